"""SQL models: the SELECTs in dbt_like_sql/, built in the warehouse as views (or tables).

Each `.sql` file is one SELECT whose name is the file's stem. Its dependencies come from the
SQL itself: sqlglot finds the tables it reads (CTE names excluded, scope by scope), each
either a warehouse table or another model, and models are built upstream first. The
comment lines that open a file describe it; a header line `-- materialized: table` builds
a table instead of a view.

The SQL is portable: it runs unchanged on SQLite and PostgreSQL. Money is integer minor
units on both; PostgreSQL sums BIGINT into NUMERIC, so the models cast sums back to BIGINT.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import sqlglot
from sqlalchemy import Connection, CursorResult, Engine, inspect
from sqlalchemy.exc import DBAPIError
from sqlglot import exp
from sqlglot.errors import ParseError
from sqlglot.optimizer.scope import traverse_scope

from datagate_pipelines import DatagateError
from datagate_pipelines.warehouse.models import metadata

PROJECT_DIR = Path(__file__).resolve().parents[2]
# pyproject.toml puts dbt_like_sql/ into the wheel here (hatch force-include).
PACKAGED_MODELS_DIR = Path(__file__).resolve().parents[1] / "dbt_like_sql"
MODELS_DIR_ENV = "DATAGATE_SQL_MODELS_DIR"
WAREHOUSE_TABLES = frozenset(metadata.tables)
MATERIALIZATIONS = ("view", "table")

_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_DIRECTIVE = re.compile(r"materialized\s*:\s*(\w+)", re.IGNORECASE)
_LABEL = re.compile(r"[A-Z][a-z]+:")  # "Grain:", "Units:" start their own paragraph


class SQLModelError(DatagateError):
    """A SQL model that cannot be read or built; the message starts with its file."""

    def __init__(self, path: Path, reason: str, *, detail: str | None = None):
        self.path = path
        self.reason = reason
        # The database's full diagnostic (PostgreSQL adds LINE/caret context after line one).
        self.detail = detail or reason
        super().__init__(f"{display_path(path)}: {reason}")


@dataclass(frozen=True)
class SQLModel:
    """One `.sql` file: its SELECT, its header comment and what it reads."""

    name: str
    path: Path
    sql: str
    description: str
    materialized: str
    tables: frozenset[str]
    """Warehouse tables the SELECT reads."""
    models: frozenset[str]
    """Other models the SELECT reads (built before this one)."""


@dataclass(frozen=True)
class Materialized:
    """What a build produced: the relation's row count and its columns (name, type)."""

    name: str
    materialized: str
    row_count: int
    columns: tuple[tuple[str, str], ...]


def display_path(path: Path) -> str:
    """`dbt_like_sql/foo.sql`: relative to the project when inside it, else folder/file."""
    try:
        return path.resolve().relative_to(PROJECT_DIR).as_posix()
    except ValueError:
        return f"{path.parent.name}/{path.name}"


def models_dir(directory: str | Path | None = None) -> Path:
    """The folder of SQL models: the argument, else DATAGATE_SQL_MODELS_DIR, else the
    project's dbt_like_sql/, else (installed from a wheel, no project around) the copy the
    wheel ships inside the package."""
    chosen = directory or os.environ.get(MODELS_DIR_ENV)
    if chosen:
        return Path(chosen)
    source = PROJECT_DIR / "dbt_like_sql"
    return source if source.is_dir() else PACKAGED_MODELS_DIR


def header(sql: str) -> tuple[str, str]:
    """The opening comment block of a model → (description, materialization)."""
    described, materialized = [], "view"
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            if stripped:
                break
            continue
        comment = stripped[2:].strip()
        directive = _DIRECTIVE.fullmatch(comment)
        if directive:
            materialized = directive.group(1).lower()
        elif described and _LABEL.match(comment):
            described.extend(["", comment])
        else:
            described.append(comment)
    return "\n".join(described).strip(), materialized


def table_references(sql: str) -> set[str]:
    """Names of the tables and views a SELECT reads, without its CTEs.

    Scope by scope, so a CTE that shadows a table hides it only where the CTE is visible.
    Raises `ValueError` for anything but exactly one query, or schema-qualified names
    (which would tie the model to one database's schemas).
    """
    statements = [s for s in sqlglot.parse(sql) if s is not None]
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ValueError("a model is exactly one SELECT statement")
    names = set()
    for scope in traverse_scope(statements[0]):
        for source in scope.sources.values():
            if isinstance(source, exp.Table):
                if source.db or source.catalog:
                    raise ValueError(f"schema-qualified table {source.sql()} is not portable")
                names.add(source.name.lower())
    return names


def parse_model(path: Path, model_names: Iterable[str]) -> SQLModel:
    """Read one model file; `model_names` are the models it may reference."""
    name = path.stem
    if not _NAME.fullmatch(name):
        raise SQLModelError(path, "model names are lower-case identifiers ([a-z_][a-z0-9_]*)")
    if name in WAREHOUSE_TABLES:
        raise SQLModelError(path, f"{name} is a warehouse table; name the model otherwise")
    sql = path.read_text().strip().removesuffix(";").rstrip()
    description, materialized = header(sql)
    if materialized not in MATERIALIZATIONS:
        raise SQLModelError(path, f"materialized: {materialized} is not one of view, table")
    if not description:
        raise SQLModelError(path, "begins with a comment header: what it answers, grain, units")
    try:
        references = table_references(sql)
    except (ParseError, ValueError) as exc:
        raise SQLModelError(path, str(exc).splitlines()[0]) from None
    known_models = set(model_names)
    unknown = sorted(references - known_models - WAREHOUSE_TABLES)
    if unknown:
        raise SQLModelError(path, f"reads unknown table(s) {', '.join(unknown)}")
    return SQLModel(
        name=name,
        path=path,
        sql=sql,
        description=description,
        materialized=materialized,
        tables=frozenset(references & WAREHOUSE_TABLES),
        models=frozenset(references & known_models),
    )


def topological_order(models: Iterable[SQLModel]) -> list[SQLModel]:
    """Models with every model they read before them (ties broken by name)."""
    by_name = {m.name: m for m in sorted(models, key=lambda m: m.name)}
    # Only the models given are ordered; one they read that is not among them is built already.
    sorter = TopologicalSorter(
        {name: sorted(m.models & by_name.keys()) for name, m in by_name.items()}
    )
    try:
        return [by_name[name] for name in sorter.static_order()]
    except CycleError as exc:
        cycle = exc.args[1]
        raise SQLModelError(
            by_name[cycle[0]].path, f"models read each other in a cycle: {' → '.join(cycle)}"
        ) from None


def discover(directory: str | Path | None = None) -> list[SQLModel]:
    """Every model in the folder, parsed, in build order."""
    paths = sorted(models_dir(directory).glob("*.sql"))
    names = {p.stem for p in paths}
    return topological_order(parse_model(p, names) for p in paths)


def downstream(models: Sequence[SQLModel], name: str) -> list[SQLModel]:
    """The models that read `name`, directly or through others, in build order."""
    reached = {name}
    found = []
    for model in topological_order(models):
        if model.models & reached:
            reached.add(model.name)
            found.append(model)
    return found


def materialize(
    engine: Engine, model: SQLModel, *, dependents: Sequence[SQLModel] | None = None
) -> Materialized:
    """(Re)build the model's view or table; idempotent, all or nothing.

    The old relation is dropped and the new one created in one transaction, so a model that
    fails leaves the previous build in place. PostgreSQL refuses to drop a view that others
    read, so the models built on this one (`dependents`; by default those found in the
    model's folder) that exist are dropped first and rebuilt after, in the same
    transaction. Raises `SQLModelError` naming the file and the database's message.
    """
    if dependents is None:
        dependents = downstream(discover(model.path.parent), model.name)
    return _rebuild(engine, [model], dependents)[0]


def materialize_all(engine: Engine, models: Sequence[SQLModel]) -> list[Materialized]:
    """Build every model, upstream first, in one transaction."""
    return _rebuild(engine, topological_order(models), ())


def _rebuild(
    engine: Engine, models: Sequence[SQLModel], dependents: Sequence[SQLModel]
) -> list[Materialized]:
    names = {m.name for m in models}
    with engine.connect() as connection, connection.begin():
        _transactional_ddl(connection)
        existing = _relations(connection)
        rebuilt = [d for d in dependents if d.name in existing and d.name not in names]
        build = [*models, *rebuilt]
        for relation in reversed(build):
            _drop(connection, relation, existing)
        for relation in build:
            _create(connection, relation)
        return [_describe(connection, model) for model in models]


def _transactional_ddl(connection: Connection) -> None:
    # Python's sqlite3 opens transactions only before DML, so DROP/CREATE would autocommit
    # one by one; an explicit BEGIN makes them roll back together, as on PostgreSQL.
    # IMMEDIATE takes the write lock first: a deferred read-then-write could hit
    # SQLITE_BUSY_SNAPSHOT under WAL when another writer got in between.
    if connection.dialect.name == "sqlite":
        dbapi = connection.connection.dbapi_connection
        if dbapi is not None and not dbapi.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _relations(connection: Connection) -> dict[str, str]:
    inspector = inspect(connection)
    found = {name: "table" for name in inspector.get_table_names()}
    found.update({name: "view" for name in inspector.get_view_names()})
    return found


def _drop(connection: Connection, model: SQLModel, existing: dict[str, str]) -> None:
    kind = existing.get(model.name)
    if kind is None:
        return
    # Whatever kind the model was built as last time (a model may switch view ↔ table).
    statement = f"DROP {'VIEW' if kind == 'view' else 'TABLE'} IF EXISTS {model.name}"
    _execute(connection, model, statement)


def _create(connection: Connection, model: SQLModel) -> None:
    keyword = "VIEW" if model.materialized == "view" else "TABLE"
    _execute(connection, model, f"CREATE {keyword} {model.name} AS\n{model.sql}\n")
    # SQLite accepts a view over missing tables or columns; reading it once finds out now.
    _execute(connection, model, f"SELECT * FROM {model.name} LIMIT 0")


def _describe(connection: Connection, model: SQLModel) -> Materialized:
    row_count = _execute(connection, model, f"SELECT COUNT(*) FROM {model.name}").scalar_one()
    columns = tuple(
        (column["name"], _type_name(column["type"]))
        for column in inspect(connection).get_columns(model.name)
    )
    return Materialized(model.name, model.materialized, int(row_count), columns)


def _type_name(column_type: object) -> str:
    name = str(column_type)
    # SQLite keeps no type for computed view columns.
    return "" if name == "NULL" else name


def _execute(connection: Connection, model: SQLModel, statement: str) -> CursorResult:
    try:
        # Exactly as written: no bind parameters from colons, no driver formatting of "%".
        return connection.exec_driver_sql(statement, execution_options={"no_parameters": True})
    except DBAPIError as exc:
        message = str(exc.orig).strip()
        raise SQLModelError(
            model.path,
            message.splitlines()[0] if message else type(exc.orig).__name__,
            detail=message,
        ) from None
