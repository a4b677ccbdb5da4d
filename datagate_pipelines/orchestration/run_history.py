"""The last run of each portal, for `datagate portals status`, without loading Dagster
when the instance keeps its runs in the local SQLite file.

Importing Dagster takes most of a second, and `portals status` should answer at once. The
local instance (a DAGSTER_HOME whose dagster.yaml has no `storage` or `run_storage`
section, as deploy/dagster.yaml) keeps its runs in `history/runs.db`; this module reads
its `runs` and `run_tags` tables there, read-only, the way Dagster's own `get_runs` does
(newest first by id). Any other storage (PostgreSQL, deploy/dagster.postgres.yaml) is
asked through the Dagster instance. tests/orchestration/test_run_history.py checks that
both ways agree, so a Dagster upgrade that changes those tables fails a test, not this
command.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from datagate_pipelines.orchestration.instance import dagster_home
from datagate_pipelines.orchestration.tags import PORTAL_TAG

RUNS_DB = Path("history") / "runs.db"
STORAGE_SECTIONS = ("storage", "run_storage")

_LAST_RUN = """
SELECT runs.run_id, runs.pipeline_name, runs.status
FROM runs JOIN run_tags ON run_tags.run_id = runs.run_id
WHERE run_tags.key = ? AND run_tags.value = ?
ORDER BY runs.id DESC
LIMIT 1
"""


@dataclass(frozen=True)
class LastRun:
    run_id: str
    job: str
    status: str  # Dagster's run status, e.g. SUCCESS, FAILURE, STARTED, QUEUED


def last_runs(portal_ids: Iterable[str]) -> dict[str, LastRun]:
    """Each portal's newest run (portals that never ran are left out)."""
    home = dagster_home()
    ids = list(portal_ids)
    if _local_sqlite(home):
        return _from_runs_db(home / RUNS_DB, ids)
    return _from_instance(ids)


def _local_sqlite(home: Path) -> bool:
    settings = yaml.safe_load((home / "dagster.yaml").read_text(encoding="utf-8")) or {}
    return not any(section in settings for section in STORAGE_SECTIONS)


def _from_runs_db(path: Path, portal_ids: list[str]) -> dict[str, LastRun]:
    if not path.exists():  # no run yet
        return {}
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        found = {}
        for portal_id in portal_ids:
            row = connection.execute(_LAST_RUN, (PORTAL_TAG, portal_id)).fetchone()
            if row is not None:
                found[portal_id] = LastRun(*row)
        return found
    finally:
        connection.close()


def _from_instance(portal_ids: list[str]) -> dict[str, LastRun]:
    import dagster as dg

    from datagate_pipelines.orchestration.instance import instance

    dagster = instance()
    found = {}
    for portal_id in portal_ids:
        runs = dagster.get_runs(filters=dg.RunsFilter(tags={PORTAL_TAG: portal_id}), limit=1)
        if runs:
            found[portal_id] = LastRun(runs[0].run_id, runs[0].job_name, runs[0].status.value)
    return found
