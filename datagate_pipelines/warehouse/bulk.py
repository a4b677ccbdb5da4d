"""Bulk writes: plain inserts and upserts of many rows, the same semantics on every database
(reads into frames: warehouse/frames.py).

PostgreSQL: rows go through `COPY … FROM STDIN` (text format) — into the table itself for a
plain insert, into a temporary staging table for an upsert, followed by one
`INSERT … SELECT … ON CONFLICT`. Per-row statements (even batched) cost the server a parse,
plan and trigger round per row; COPY streams them. SQLite: `executemany` of one compiled
statement, the fastest path it has.

Values pass through each column's own bind processing first (warehouse/types.py: exact
numbers become their scaled integers, timestamps UTC, JSON text), so what is stored is what
an `insert()` would store. Floats are refused: exact numbers travel as integers or Decimal
text, never through binary floating point.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Table,
    bindparam,
    column,
    insert,
    select,
    update,
)
from sqlalchemy import table as table_clause
from sqlalchemy.dialects import postgresql, sqlite

# Rows formatted at a time for COPY: bounds the text held in memory (~100 bytes a row)
# and keeps the server busy while the next chunk is made.
COPY_CHUNK_ROWS = 10_000

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_staging_names = itertools.count(1)

# SQLite allows 32,766 bound parameters per statement: IN lists and wide rows stay well below.
CHUNK_ROWS = 400


def _copy_text(value: Any) -> str:
    """One value as a field of COPY's text format."""
    if value is None:
        return "\\N"
    kind = type(value)
    if kind is str:
        return value.translate(_ESCAPES)
    if kind is int:
        return str(value)
    if kind is bool:
        return "t" if value else "f"
    if kind is Decimal:
        return format(value, "f")
    if kind is date or kind is datetime:
        return value.isoformat()
    if kind is float:
        raise TypeError("floats are not written by the bulk path; pass a Decimal or an int")
    if isinstance(value, int):  # numpy and other integer kinds
        return str(int(value))
    return str(value).translate(_ESCAPES)


def _processors(connection: Connection, columns: Sequence[Column]) -> list[Callable | None]:
    return [c.type.bind_processor(connection.dialect) for c in columns]


def _converted(values: Iterable[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """`convert` applied to each value (None stays None), once per distinct value: a
    column's money, dates and codes repeat, and a Decimal's scaling costs ~1 µs. Plain
    ints skip the memo; unhashable values (JSON) are converted one by one."""
    memo: dict[Any, Any] = {}
    out = []
    append = out.append
    for value in values:
        if value is None:
            append(None)
            continue
        if type(value) is float:  # 1.0 == Decimal("1.00"): never served another's result
            append(convert(value))
            continue
        try:
            append(memo[value])
        except KeyError:
            append(memo.setdefault(value, convert(value)))
        except TypeError:
            append(convert(value))
    return out


def _bound(values: Sequence[Any], processor: Callable | None) -> list[Any]:
    """Values as the driver receives them (the column type's bind processing)."""
    if processor is None:
        return list(values)
    return _converted(values, processor)


def _column_text(values: Sequence[Any], processor: Callable | None) -> list[str]:
    """Values as COPY text fields, bind-processed first. Text that needs no escaping and
    plain ints are written as they are; other values once per distinct value."""
    if processor is None:
        convert = _copy_text
    else:

        def convert(value: Any) -> str:
            return _copy_text(processor(value))

    memo: dict[Any, str] = {}
    out = []
    append = out.append
    for value in values:
        kind = type(value)
        if value is None:
            append("\\N")
        elif processor is None and kind is str and value.isprintable() and "\\" not in value:
            append(value)  # \t, \n and \r are not printable
        elif processor is None and kind is int:
            append(str(value))
        elif kind is float:  # refused, not served the result of an equal Decimal
            append(convert(value))
        else:
            try:
                append(memo[value])
            except KeyError:
                append(memo.setdefault(value, convert(value)))
            except TypeError:  # unhashable (JSON)
                append(convert(value))
    return out


def _copy_lines(columns: Sequence[Column], data: Sequence[Sequence[Any]], processors) -> str:
    """Column-wise values as COPY text: each column formatted in one pass, then joined."""
    cells = [
        _column_text(values, processor) for values, processor in zip(data, processors, strict=True)
    ]
    return "".join(line + "\n" for line in map("\t".join, zip(*cells, strict=True)))


class _CopyStream:
    """COPY text made a chunk at a time as the driver reads it: the server takes in one
    chunk while Python formats the next (on PostgreSQL's own core), instead of each
    waiting for the other, and only a chunk's text is held at once."""

    def __init__(self, chunks: Iterable[str]):
        self._chunks = iter(chunks)
        self.error: Exception | None = None

    def read(self, _size: int = -1) -> str:
        # The driver sends whatever length comes back; an empty string ends the data.
        try:
            return next(self._chunks, "")
        except Exception as error:  # the driver would hide it behind "COPY failed"
            self.error = error
            raise


def _copy(connection: Connection, target: str, columns: Sequence[Column], data) -> None:
    """COPY column-wise `data` into `target` (a quoted table name): one statement, its
    rows formatted chunk by chunk while they stream."""
    preparer = connection.dialect.identifier_preparer
    names = ", ".join(preparer.quote(c.name) for c in columns)
    processors = _processors(connection, columns)
    count = len(data[0]) if data else 0
    chunks = (
        _copy_lines(
            columns, [values[start : start + COPY_CHUNK_ROWS] for values in data], processors
        )
        for start in range(0, count, COPY_CHUNK_ROWS)
    )
    stream = _CopyStream(chunks)
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        # A bad value found mid-stream leaves the transaction as it was, as one found
        # before any row was sent would.
        cursor.execute("SAVEPOINT datagate_copy")
        try:
            cursor.copy_expert(f"COPY {target} ({names}) FROM STDIN", stream)
        except Exception:
            if stream.error is None:
                raise
            cursor.execute("ROLLBACK TO SAVEPOINT datagate_copy")
            raise stream.error from None  # the value's own error, not "COPY failed"
        cursor.execute("RELEASE SAVEPOINT datagate_copy")
    finally:
        cursor.close()


def uses_copy(connection: Connection) -> bool:
    """Whether bulk rows travel by COPY (PostgreSQL through psycopg2)."""
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg2"


def _columns(table: Table, names: Iterable[str]) -> list[Column]:
    unknown = [n for n in names if n not in table.c]
    if unknown:
        raise KeyError(f"{table.name}: no column(s) {', '.join(unknown)}")
    return [table.c[n] for n in names]


def _with_defaults(table: Table, data: dict[str, Sequence[Any]], count: int) -> None:
    """Fill omitted columns that have a scalar client-side default, as `insert()` does."""
    for c in table.columns:
        if c.name in data or c.default is None:
            continue
        if not c.default.is_scalar:
            raise NotImplementedError(
                f"{table.name}.{c.name}: a callable default is not bulk-written"
            )
        data[c.name] = [c.default.arg] * count


def insert_columns(connection: Connection, table: Table, data: Mapping[str, Sequence[Any]]) -> int:
    """Insert rows given column by column (name → values, all of one length)."""
    data = dict(data)
    lengths = {len(values) for values in data.values()}
    if len(lengths) > 1:
        raise ValueError(f"{table.name}: columns of different lengths {sorted(lengths)}")
    count = lengths.pop() if lengths else 0
    if count == 0:
        return 0
    _with_defaults(table, data, count)
    columns = _columns(table, data)
    values = [data[c.name] for c in columns]
    if uses_copy(connection):
        _copy(
            connection, connection.dialect.identifier_preparer.format_table(table), columns, values
        )
        return count
    if connection.dialect.name != "sqlite":
        connection.execute(
            insert(table),
            [dict(zip(data, row, strict=True)) for row in zip(*data.values(), strict=True)],
        )
        return count
    processors = _processors(connection, columns)
    rows = list(
        zip(*(list(_bound(v, p)) for v, p in zip(values, processors, strict=True)), strict=True)
    )
    marks = ", ".join("?" for _ in columns)
    names = ", ".join(connection.dialect.identifier_preparer.quote(c.name) for c in columns)
    connection.exec_driver_sql(
        f"INSERT INTO {connection.dialect.identifier_preparer.format_table(table)} "
        f"({names}) VALUES ({marks})",
        rows,
    )
    return count


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert rows given as mappings (every row with the first row's keys)."""
    if not rows:
        return 0
    names = list(rows[0])
    return insert_columns(connection, table, {n: [row[n] for row in rows] for n in names})


def _merged(
    rows: Sequence[Mapping[str, Any]], key: Sequence[str], to_update: Sequence[str]
) -> list[Mapping[str, Any]]:
    """Rows with one row per key, as applying them one after another would leave it: the
    first row's values, with `to_update` taken from the last (one statement may not touch
    a row twice)."""
    by_key: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        earlier = by_key.get(k)
        by_key[k] = row if earlier is None else {**earlier, **{c: row[c] for c in to_update}}
    return list(by_key.values()) if len(by_key) < len(rows) else list(rows)


def _dialect_insert(connection: Connection, table: Any) -> Any:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are not implemented for {dialect}")


def _on_conflict(statement: Any, key: Sequence[str], to_update: Sequence[str]) -> Any:
    if to_update:
        return statement.on_conflict_do_update(
            index_elements=list(key),
            set_={c: getattr(statement.excluded, c) for c in to_update},
        )
    return statement.on_conflict_do_nothing(index_elements=list(key))


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    update_columns: Iterable[str] | None = None,
) -> int:
    """Insert rows; on a key conflict update `update_columns` (default: all but the key)."""
    if not rows:
        return 0
    names = list(rows[0])
    to_update = [
        c for c in (update_columns if update_columns is not None else names) if c not in key
    ]
    if not uses_copy(connection):
        # One statement compiled once and executed for all rows (SQLAlchemy batches the
        # VALUES itself); compiling a multi-row VALUES clause per chunk cost more.
        statement = _on_conflict(_dialect_insert(connection, table), key, to_update)
        connection.execute(statement, list(rows))
        return len(rows)
    unique = _merged(rows, key, to_update)
    data = {n: [row[n] for row in unique] for n in names}
    _with_defaults(table, data, len(unique))
    columns = _columns(table, data)
    _stage_and_merge(connection, table, columns, [data[c.name] for c in columns], key, to_update)
    return len(rows)


def _create_stage(connection: Connection, table: Table, columns: Sequence[Column]) -> str:
    """A temporary table with the target's column types and none of its constraints."""
    preparer = connection.dialect.identifier_preparer
    stage = f"datagate_stage_{next(_staging_names)}"
    names = ", ".join(preparer.quote(c.name) for c in columns)
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {stage} AS SELECT {names} "
        f"FROM {preparer.format_table(table)} WITH NO DATA"
    )
    return stage


def _stage_and_merge(
    connection: Connection,
    table: Table,
    columns: Sequence[Column],
    values: Sequence[Sequence[Any]],
    key: Sequence[str],
    to_update: Sequence[str],
) -> None:
    stage = _create_stage(connection, table, columns)
    _copy(connection, stage, columns, values)
    staged = table_clause(stage, *(column(c.name) for c in columns))
    statement = _dialect_insert(connection, table).from_select(
        [c.name for c in columns], select(*staged.columns)
    )
    connection.execute(_on_conflict(statement, key, to_update))
    connection.exec_driver_sql(f"DROP TABLE {stage}")


def update_rows(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, key: Sequence[str]
) -> int:
    """Update existing rows found by `key` to the rows' other values (every row with the
    first row's keys); rows matching nothing change nothing. PostgreSQL: COPY into a
    staging table and one UPDATE … FROM; elsewhere executemany of one UPDATE."""
    if not rows:
        return 0
    names = list(rows[0])
    to_set = [n for n in names if n not in key]
    if not uses_copy(connection):
        statement = (
            update(table)
            .where(*(table.c[k] == bindparam(f"key_{k}") for k in key))
            .values({n: bindparam(f"set_{n}") for n in to_set})
        )
        connection.execute(
            statement,
            [
                {**{f"key_{k}": row[k] for k in key}, **{f"set_{n}": row[n] for n in to_set}}
                for row in rows
            ],
        )
        return len(rows)
    columns = _columns(table, names)
    preparer = connection.dialect.identifier_preparer
    stage = _create_stage(connection, table, columns)
    _copy(connection, stage, columns, [[row[c.name] for row in rows] for c in columns])
    assignments = ", ".join(f"{preparer.quote(n)} = s.{preparer.quote(n)}" for n in to_set)
    matches = " AND ".join(f"t.{preparer.quote(k)} = s.{preparer.quote(k)}" for k in key)
    connection.exec_driver_sql(
        f"UPDATE {preparer.format_table(table)} AS t SET {assignments} FROM {stage} AS s "
        f"WHERE {matches}"
    )
    connection.exec_driver_sql(f"DROP TABLE {stage}")
    return len(rows)
