"""Where the exports write: an Engine (one short transaction per step) or a Connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

Database = Engine | Connection


@contextmanager
def transaction(db: Database) -> Iterator[Connection]:
    """A connection to write one step through.

    With an Engine every step commits on its own, so an export killed half-way keeps
    every record it made before: pass an Engine in production. With a Connection the
    caller's transaction holds everything until the caller commits (tests, one-shot
    scripts); a crash then loses the records, and the next run's lookups find the
    invoices again instead of creating them twice.
    """
    if isinstance(db, Engine):
        with db.begin() as connection:
            yield connection
    else:
        yield db
