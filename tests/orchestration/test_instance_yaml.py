"""The instance files of deploy/ are what Dagster accepts (its own schema, no database
needed), and the production one fails a run whose worker died instead of waiting for ever."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster._core.instance.config import dagster_instance_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load(name: str, tmp_path: Path) -> dict:
    shutil.copy(DEPLOY / name, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    return dict(config)


@pytest.mark.parametrize("name", ["dagster.yaml", "dagster.postgres.yaml"])
def test_the_instance_files_validate(name, tmp_path):
    load(name, tmp_path)


def test_production_monitoring_fails_a_run_longer_than_a_night_allows(tmp_path):
    config = load("dagster.postgres.yaml", tmp_path)
    monitoring, retries = config["run_monitoring"], config["run_retries"]
    assert monitoring["enabled"] and retries["enabled"] and retries["max_retries"] >= 1
    # Above the longest nightly run (a 50,000-customer full sync: ~40 min of HaloPSA's
    # budget), below a day: the next night's runs of the portal are not held up.
    assert 3 * 40 * 60 <= monitoring["max_runtime_seconds"] < 24 * 3600
