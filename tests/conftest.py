"""Shared fixtures: every warehouse test runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from sqlalchemy import Connection, Engine, create_engine, text

from datagate_pipelines.warehouse.db import make_engine, migrate
from datagate_pipelines.warehouse.models import metadata

pytest_plugins = ["tests.stacks"]

POSTGRES_URL = os.environ.get(
    "DATAGATE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
# Asset retries wait 30 s in production; tests should not.
os.environ.setdefault("DATAGATE_ASSET_RETRY_DELAY", "0")


@pytest.fixture(autouse=True)
def _no_dagster_instance_left_in_context():
    """Each test starts with no Dagster instance in context. Dagster keeps the storage of
    the last instance entered in a context variable of the thread; a run executed in-process
    (the CLI under CliRunner) can leave it pointing at an instance that is gone when the
    test ends, and the next test's `materialize` then fails to read it."""
    yield
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)


def _postgres_or_skip() -> None:
    try:
        with create_engine(POSTGRES_URL).connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({type(exc).__name__})"
        if IN_CI:
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(f"SKIPPING POSTGRES TESTS: {message}")


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[callable]:
    """Make URLs of fresh PostgreSQL schemas; every schema is dropped at the end."""
    _postgres_or_skip()
    made: list[str] = []

    def make() -> str:
        schema = f"test_{uuid.uuid4().hex[:12]}"
        with create_engine(POSTGRES_URL).begin() as connection:
            connection.execute(text(f'create schema "{schema}"'))
        made.append(schema)
        return f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema} -csynchronous_commit=off')}"

    yield make
    with create_engine(POSTGRES_URL).begin() as connection:
        for schema in made:
            connection.execute(text(f'drop schema if exists "{schema}" cascade'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    """An empty database (not migrated) of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("postgres_schema_url")()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def _migrated_engine(request, tmp_path_factory) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('warehouse') / 'warehouse.db'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")()
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(_migrated_engine: Engine) -> Iterator[Engine]:
    """A migrated warehouse on SQLite and on PostgreSQL, emptied after each test."""
    yield _migrated_engine
    with _migrated_engine.begin() as connection, append_only_lifted(connection):
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@contextmanager
def rolled_back(engine: Engine) -> Iterator[Connection]:
    """A connection whose every change, the schema's included, is rolled back at the end.
    pysqlite opens a transaction only before a row's change, so a DROP INDEX first would
    be committed at once: on SQLite the transaction is begun explicitly."""
    with engine.connect() as connection:
        transaction = connection.begin()
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN")
        try:
            yield connection
        finally:
            transaction.rollback()


@contextmanager
def append_only_lifted(connection) -> Iterator[None]:
    """Between tests only: the audit trail's triggers refuse deletes (migration 0010), so
    they are set aside while the tables are emptied, and put back."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("alter table audit_events disable trigger user"))
        yield
        connection.execute(text("alter table audit_events enable trigger user"))
        return
    triggers = connection.execute(
        text(
            "select name, sql from sqlite_master where type = 'trigger' and tbl_name = 'audit_events'"
        )
    ).all()
    for name, _sql in triggers:
        connection.execute(text(f'drop trigger "{name}"'))
    yield
    for _name, sql in triggers:
        connection.execute(text(sql))


@pytest.fixture
def engine_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The end-to-end tests (`dagster dev`, tests/e2e) take minutes, most of them waiting on
    Dagster's daemon ticks: each goes first in its own xdist worker's share (worksteal hands
    each worker a contiguous slice of this order), so they run side by side from the start
    while another worker's tests fill their waits, instead of one after the other. The order
    is the same in every worker, as xdist requires; the workers learn their number from
    xdist's environment (their `numprocesses` option is unset)."""
    daemon_bound = [item for item in items if item.path.parent.name == "e2e"]
    if not daemon_bound:
        return
    ordered = [item for item in items if item.path.parent.name != "e2e"]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    share = len(items) // workers
    for index, item in enumerate(daemon_bound):
        ordered.insert(min(index, workers - 1) * share + max(0, index - workers + 1), item)
    items[:] = ordered
