"""Pandera building blocks shared by every schema, and the gate that turns failures into rejects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from datagate_pipelines.warehouse.rejects import Reject

# Columns of one of these kinds hold no floats, so values equal to each other (Decimal
# "1.0" and "1.00") may share one verdict; a float must never share a Decimal's.
_ONE_KIND = frozenset({"decimal", "date", "datetime", "string", "boolean"})


def _each(predicate: Any, name: str) -> pa.Check:
    """`predicate` on every non-None value (never a float), judged once per distinct
    value: a million lines share a few thousand Decimals and dates."""

    def check(series: pd.Series) -> pd.Series:
        values = series.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(values, skipna=True) in _ONE_KIND:
            codes, uniques = pd.factorize(values)  # None (and NaN) get code -1
            verdicts = np.array([bool(predicate(v)) for v in uniques] + [True], dtype=bool)
            return pd.Series(verdicts[codes], index=series.index, dtype=bool)

        def ok(value: Any) -> bool:
            return value is None or (not isinstance(value, float) and predicate(value))

        return pd.Series([ok(v) for v in values], index=series.index, dtype=bool)

    return pa.Check(check, name=name, error=name)


def exact(places: int) -> pa.Check:
    """Decimal values (never floats) with at most `places` decimal places; None allowed."""
    quantum = Decimal(1).scaleb(-places)
    return _each(
        lambda v: isinstance(v, Decimal) and v.is_finite() and v == v.quantize(quantum),
        f"decimal with at most {places} places",
    )


def is_date() -> pa.Check:
    return _each(lambda v: isinstance(v, date), "a date")


def money(nullable: bool = False) -> pa.Column:
    return pa.Column(object, exact(2), nullable=nullable)


def quantity(nullable: bool = False) -> pa.Column:
    return pa.Column(object, exact(4), nullable=nullable)


def rate(nullable: bool = True) -> pa.Column:
    return pa.Column(object, exact(8), nullable=nullable)


def day(nullable: bool = True) -> pa.Column:
    return pa.Column(object, is_date(), nullable=nullable)


def ident(nullable: bool = False, unique: bool = False) -> pa.Column:
    return pa.Column("Int64", nullable=nullable, unique=unique, coerce=True)


def text(nullable: bool = True) -> pa.Column:
    return pa.Column(object, nullable=nullable)


def flag() -> pa.Column:
    return pa.Column(bool, coerce=False)


def to_frame(rows: Iterable[Mapping[str, Any]], schema: pa.DataFrameSchema) -> pd.DataFrame:
    """Rows → a frame with exactly the schema's columns (object dtype keeps Decimals exact)."""
    columns = list(schema.columns)
    frame = pd.DataFrame.from_records(list(rows), columns=columns)
    for name, column in schema.columns.items():
        if str(column.dtype) == "object" or column.dtype is None:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def gate(
    frame: pd.DataFrame, schema: pa.DataFrameSchema, *, entity: str, id_column: str
) -> tuple[pd.DataFrame, list[Reject]]:
    """Validate lazily; rows that fail leave the frame and come back as rejects with reasons.

    Frame-level failures (a missing column, a wrong dtype for the whole column) are bugs in
    our own code, not bad rows, so they raise.
    """
    try:
        return schema.validate(frame, lazy=True), []
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        row_cases = cases[cases["index"].notna()]
        if len(row_cases) < len(cases):
            raise
        rejects = []
        bad_index = set()
        for case in row_cases.itertuples():
            bad_index.add(case.index)
            record_id = frame.at[case.index, id_column] if id_column in frame else None
            rejects.append(
                Reject(
                    entity,
                    None if pd.isna(record_id) else str(record_id),
                    None if pd.isna(case.column) else str(case.column),
                    f"failed check '{case.check}' with value {case.failure_case!r}",
                )
            )
        kept = frame.drop(index=list(bad_index))
        return schema.validate(kept, lazy=True), rejects


def values(series: pd.Series) -> list[Any]:
    """A column → plain Python values for the database (missing values as None); numbers
    and objects keep their type (Decimals stay Decimals), numpy integers become ints."""
    return series.to_numpy(dtype=object, na_value=None).tolist()


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Frame → plain Python rows for the database (no numpy scalars, no pd.NA)."""

    def plain(value: Any) -> Any:
        if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
            return None
        if value is pd.NaT:
            return None
        return value.item() if hasattr(value, "item") and not isinstance(value, Decimal) else value

    return [
        {k: plain(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")
    ]
