"""Each portal's last run, read from the local instance's runs.db without Dagster, is what
the Dagster instance itself answers; an instance with other storage is asked directly."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from datagate_pipelines.orchestration import run_history
from datagate_pipelines.orchestration.instance import dagster_home
from datagate_pipelines.orchestration.run_history import LastRun, last_runs
from datagate_pipelines.orchestration.tags import PORTAL_TAG

RUNS = [  # oldest first
    ("acme", "portal_sync", dg.DagsterRunStatus.SUCCESS),
    ("globex", "portal_sync", dg.DagsterRunStatus.STARTED),
    ("acme", "billing", dg.DagsterRunStatus.FAILURE),
    (None, "sql_models", dg.DagsterRunStatus.SUCCESS),  # no portal
]


def add_runs(instance: dg.DagsterInstance) -> dict[str, LastRun]:
    newest: dict[str, LastRun] = {}
    for portal, job, status in RUNS:
        run_id = str(uuid.uuid4())
        instance.add_run(
            dg.DagsterRun(
                job_name=job,
                run_id=run_id,
                status=status,
                tags={PORTAL_TAG: portal} if portal else {},
            )
        )
        if portal:
            newest[portal] = LastRun(run_id, job, status.value)
    return newest


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    return dagster_home()  # deploy/dagster.yaml: the local SQLite storage


def test_the_local_runs_db_answers_like_the_instance(home):
    assert last_runs(["acme"]) == {}  # no run yet: no runs.db to read either
    with dg.DagsterInstance.from_config(str(home)) as instance:
        expected = add_runs(instance)
    ids = ["acme", "globex", "never-ran"]
    assert last_runs(ids) == expected
    assert run_history._from_instance(ids) == expected
    assert set(expected) == {"acme", "globex"} and expected["acme"].job == "billing"


def test_other_storage_is_asked_through_dagster(home, tmp_path):
    storage = tmp_path / "elsewhere"
    (home / "dagster.yaml").write_text(
        (home / "dagster.yaml").read_text() + f"storage:\n  sqlite:\n    base_dir: {storage}\n"
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        expected = add_runs(instance)
    assert not (home / run_history.RUNS_DB).exists()
    assert last_runs(["acme", "globex"]) == expected
