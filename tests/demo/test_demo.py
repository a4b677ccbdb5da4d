"""`datagate demo` end to end (without the UI): simulators, sync, billing, export, summary."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest


@pytest.mark.e2e
@pytest.mark.slow
def test_demo_runs_to_a_summary_and_stops_its_simulators(tmp_path):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "DATAGATE_DEMO_DIR": str(tmp_path / "demo"),
    }
    for name in ("DATAGATE_PORTALS_FILE", "DATAGATE_DATABASE_URL"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "datagate_pipelines.cli", "demo", "--no-ui", "--customers", "25"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Summary" in out and "customers:" in out and "invoices" in out
    env_file = (tmp_path / "demo" / "env").read_text()
    assert "DATAGATE_PORTALS_FILE" in env_file and "DATAGATE_DATABASE_URL" in env_file
    # Every secret the demo made stays out of its output.
    for line in env_file.splitlines():
        if "SECRET" in line or "TOKEN" in line:
            assert line.split("=", 1)[1].strip("'") not in out + result.stderr
    assert simulators_of(env["DATAGATE_DEMO_DIR"]) == []


def simulators_of(demo_dir: str) -> list[str]:
    """Simulator processes this demo started that are still alive (other demos and tests
    may run on the same machine: theirs have another demo folder in their environment)."""
    alive = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "datagate_simulators" not in command:
            continue
        try:
            if process.environ().get("DATAGATE_DEMO_DIR") == demo_dir:
                alive.append(command)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return alive
