"""What the database itself enforces, read from its catalog: whether a table has a unique
index that makes some columns unique (over the rows a predicate selects).

A check that such an index already enforces need not read the rows: a valid unique index
is the proof, where reading a ledger of millions of rows to confirm it costs seconds a
night. Where the catalog shows no such index (dropped, invalid, over other columns, with
another predicate), the caller reads the rows instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, Table, text

# A unique index's uniqueness over its key columns (PostgreSQL: valid, ready and live; an
# index built CONCURRENTLY that failed is unique in name only). Expression keys are left out
# of the column list, so an index with any is not taken as proof (`plain`).
_POSTGRESQL_UNIQUE_INDEXES = text(
    """
    SELECT c.relname AS name,
           ARRAY(
               SELECT a.attname::text
               FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               WHERE k.n <= i.indnkeyatts
               ORDER BY k.n
           ) AS columns,
           i.indexprs IS NULL AS plain,
           pg_get_expr(i.indpred, i.indrelid) AS predicate
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = to_regclass(:table)
      AND i.indisunique AND i.indisvalid AND i.indisready AND i.indislive
    """
)

_LITERAL = re.compile(r"('(?:[^']|'')*')")
_CAST = re.compile(
    r"::\s*(?:character varying|double precision|timestamp with(?:out)? time zone"
    r"|[a-z_][a-z0-9_]*)(?:\[\])?",
    re.IGNORECASE,
)
_SQLITE_PREDICATE = re.compile(r"\)\s+WHERE\s+(.*)$", re.IGNORECASE | re.DOTALL)


def enforcing_index(
    connection: Connection, table: Table, columns: Sequence[str], where: str | None = None
) -> str | None:
    """The name of a unique index of `table` that makes `columns` unique among the rows
    `where` selects (None: all rows), or None when the database enforces no such thing.

    An index over some of the columns proves the same, and so does one over all rows; a
    partial index's predicate must be `where` as written in the model (compared once the
    database's rendering is undone: casts, quotes, parentheses, case). Rows with a NULL in
    a key column are not compared, as in any SQL uniqueness."""
    wanted = set(columns)
    for name, key, stored in _unique_indexes(connection, table.name):
        if not key or not set(key) <= wanted:
            continue
        if stored is None:  # unique among all rows, so among any of them
            return name
        normal = _normal(stored)
        if normal is not None and where is not None and normal == _normal(where):
            return name
    return None


def _unique_indexes(
    connection: Connection, table: str
) -> Iterable[tuple[str, list[str], str | None]]:
    if connection.dialect.name == "postgresql":
        for row in connection.execute(_POSTGRESQL_UNIQUE_INDEXES, {"table": table}):
            if row.plain:
                yield row.name, list(row.columns), row.predicate
        return
    for _seq, name, unique, _origin, partial in connection.exec_driver_sql(
        f'PRAGMA index_list("{table}")'
    ).all():
        key = [row[2] for row in connection.exec_driver_sql(f'PRAGMA index_info("{name}")')]
        if not unique or None in key:  # None: an expression
            continue
        predicate = None
        if partial:
            sql = connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
            ).scalar_one()
            found = _SQLITE_PREDICATE.search(sql or "")
            if found is None:
                continue
            predicate = found.group(1)
        yield name, key, predicate


def _normal(predicate: str) -> str | None:
    """A conjunction's text with the rendering undone; None for anything else (an OR or a
    NOT decides by its parentheses, which this drops, so no such predicate is matched)."""
    parts = _LITERAL.split(predicate)
    for i in range(0, len(parts), 2):  # the text between string literals
        bare = _CAST.sub("", parts[i]).replace("(", " ").replace(")", " ").replace('"', "")
        parts[i] = " ".join(bare.lower().split())
    words = " ".join(parts[0::2]).split()
    if "or" in words or any(w == "not" and words[i - 1 : i] != ["is"] for i, w in enumerate(words)):
        return None
    return " ".join(part for part in parts if part)
