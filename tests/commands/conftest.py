"""The CLI against the HaloPSA simulator on loopback, a real warehouse and a Dagster home."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from datagate_pipelines.cli import main


@pytest.fixture
def cli(halo_stack, tmp_path, monkeypatch):
    """Run `datagate …` in-process; returns (exit code, output)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return run
