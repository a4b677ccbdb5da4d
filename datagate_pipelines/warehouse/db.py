"""The warehouse connection: one URL (`DATAGATE_DATABASE_URL`), migrated with Alembic.

Alembic is loaded only when the warehouse is not at the newest revision already: the
commands that only read (`datagate invoices`, `requests`, `portals status`) answer sooner.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

if TYPE_CHECKING:
    from alembic.config import Config

from datagate_pipelines import DatagateError

DEFAULT_DATA_DIR = ".datagate"


class WarehouseError(DatagateError):
    """The warehouse cannot be reached or is not at the expected schema version."""


class WarehouseUnreachable(WarehouseError):
    """The warehouse did not answer: it may be restarting, so this one is worth retrying."""


MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# A revision file's `revision = "…"` and `down_revision = …` lines (alembic's template).
_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.M)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def database_url(url: str | None = None) -> str:
    """The warehouse URL; the default is a SQLite file under ./.datagate/, made on first use."""
    url = url or os.environ.get("DATAGATE_DATABASE_URL")
    if not url:
        data_dir = Path(os.environ.get("DATAGATE_DATA_DIR", DEFAULT_DATA_DIR))
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(data_dir / 'warehouse.db').resolve()}"
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; dagster-postgres ships psycopg2.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def make_engine(url: str | None = None) -> Engine:
    """An engine for the warehouse URL (PostgreSQL options such as search_path ride in the URL)."""
    url = database_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise WarehouseError(
            f"DATAGATE_DATABASE_URL is not a database URL: {redacted(url)}"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        # Several Dagster steps and threads share the file; wait for the writer instead of failing.
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    options = {}
    if parsed.get_driver_name() == "psycopg2":
        # Bulk writes go through COPY (warehouse/bulk.py); the executemany statements left
        # (a few rows each) are batched 100 statements a round trip instead of one per row.
        options["executemany_mode"] = "values_plus_batch"
    return create_engine(url, pool_pre_ping=True, **options)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def _unreachable(engine: Engine, exc: OperationalError) -> WarehouseError:
    return WarehouseUnreachable(
        f"cannot reach the warehouse at {redacted(str(engine.url))}: {' '.join(str(exc.orig).split())}"
    )


def migrate(engine: Engine) -> None:
    """Bring the warehouse to the newest schema (idempotent)."""
    from alembic import command

    try:
        command.upgrade(alembic_config(engine), "head")
    except OperationalError as exc:
        raise _unreachable(engine, exc) from None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def head_from_files(versions: Path = MIGRATIONS_DIR / "versions") -> str | None:
    """The newest revision, read from the revision files without Alembic: the one revision
    no other revises. None when that is not one clear answer (then Alembic decides)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in versions.glob("*.py"):
        fields = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        names = _QUOTED.findall(fields.get("revision", ""))
        if len(names) != 1 or "down_revision" not in fields:
            return None
        revisions.add(names[0])
        revised.update(_QUOTED.findall(fields["down_revision"]))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def _at_revision(connection: Connection, revision: str) -> bool:
    try:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:  # no alembic_version table yet: a new warehouse
        return False
    return [row[0] for row in versions] == [revision]


@cache
def _migrated_engine(url: str) -> Engine:
    engine = make_engine(url)
    head = head_from_files()
    try:
        with engine.connect() as connection:
            current = head is not None and _at_revision(connection, head)
    except OperationalError as exc:
        raise _unreachable(engine, exc) from None
    if not current:
        migrate(engine)
    return engine


def warehouse_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url`, migrated to head on first use."""
    return _migrated_engine(database_url(url))
