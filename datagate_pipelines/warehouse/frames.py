"""Reading many rows into a pandas frame (the billing loader's inputs), kept apart from the
bulk writes so that the commands which write through warehouse/bulk.py do not load pandas."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Boolean, Connection, Date, Integer, String, TypeDecorator

from datagate_pipelines.warehouse.bulk import uses_copy


def read_columns(connection: Connection, query: Any, names: Sequence[str]) -> pd.DataFrame:
    """The rows of `query` as a frame under `names`, values as a plain read gives them
    (missing: None; dates as `date`): on PostgreSQL through `COPY (…) TO STDOUT`, which
    streams CSV text instead of building a Python tuple per row. Its columns may be text,
    whole numbers (with a missing one: a nullable Int64 column), dates and booleans; a text
    equal to `\\N` reads as missing there."""
    if not uses_copy(connection):
        return pd.DataFrame(connection.execute(query).all(), columns=list(names))
    sql = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    buffer = io.StringIO()
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, NULL '\\N')", buffer)
    finally:
        cursor.close()
    buffer.seek(0)
    frame = pd.read_csv(
        buffer,
        names=list(names),
        header=None,
        dtype=str,
        keep_default_na=False,
        na_values=["\\N"],
    )
    for name, selected in zip(names, query.selected_columns, strict=True):
        frame[name] = _typed(frame[name], selected.type, connection.dialect)
    return frame


def _typed(values: pd.Series, kind: Any, dialect: Any) -> pd.Series | np.ndarray:
    """A column of CSV text as the values of its SQL type (a type of warehouse/types.py
    through its own result processing, once per distinct value)."""
    if isinstance(kind, TypeDecorator):
        stored = pd.Series(_typed(values, kind.impl_instance, dialect), dtype=object)
        codes, uniques = pd.factorize(stored)
        converted = [kind.process_result_value(value, dialect) for value in uniques]
        return np.array([*converted, None], dtype=object)[codes]
    if isinstance(kind, Boolean):
        return values.map({"t": True, "f": False})
    present = values.notna().to_numpy()
    if isinstance(kind, Integer):  # exact: no float on the way, even with missing values
        if present.all():
            return pd.to_numeric(values)
        numbers = pd.Series(pd.NA, index=values.index, dtype="Int64")
        numbers[present] = pd.to_numeric(values[present])
        return numbers
    if isinstance(kind, Date):
        codes, uniques = pd.factorize(values)
        days = np.array([date.fromisoformat(text) for text in uniques] + [None], dtype=object)
        return days[codes]  # code -1 (missing): the last, None
    if isinstance(kind, String):
        return np.where(present, values.to_numpy(dtype=object), None)
    raise TypeError(f"read_columns: no CSV reading for {kind!r}")
