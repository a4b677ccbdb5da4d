"""Running `datagate …` in-process. `cli` alone starts nothing: a test that needs HaloPSA,
portals.yaml and a warehouse asks for `halo_stack` too (the simulator on loopback)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from datagate_pipelines.cli import main


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run `datagate …` in-process with its own Dagster home; returns (exit code, output)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return run
