"""`datagate demo` end to end (without the UI): simulators, sync, billing, export, summary."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import psutil
import pytest

from datagate_pipelines.demo.pipeline import demo_secrets, try_commands, write_configuration
from datagate_pipelines.warehouse.sql_models import discover


def in_a_new_shell(commands: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """The commands pasted into a fresh login: no virtualenv, no datagate variables."""
    return subprocess.run(
        ["bash", "-c", "set -e\n" + "\n".join(commands)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_env_file_and_the_try_lines_work_in_a_new_shell(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    period = date(2026, 11, 1)
    url = "http://127.0.0.1:9"  # the commands tried read the warehouse only
    write_configuration(folder, url, url, period, demo_secrets(), tmp_path / "dagster")
    result = in_a_new_shell(try_commands(folder / "env", period), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "portal demo: no invoices for 2026-11",
        "demo: last successful sync never; last run none; 0 pending force sync(s); "
        "0 held invoice(s); 0 failed export(s); payments never refreshed; last webhook never",
        "no requests match",
    ]
    assert (folder / "warehouse.db").exists() and (tmp_path / "dagster" / "dagster.yaml").exists()


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
    # the demo portal approves by itself, and says so (portals default to manual approval)
    assert "approval:  auto for the demo portal" in out
    env_file = (tmp_path / "demo" / "env").read_text()
    assert "DATAGATE_PORTALS_FILE" in env_file and "DATAGATE_DATABASE_URL" in env_file
    # Every secret the demo made stays out of its output.
    for line in env_file.splitlines():
        if "SECRET" in line or "TOKEN" in line:
            assert line.split("=", 1)[1].strip("'") not in out + result.stderr
    # The views are built, and the "Try" lines work pasted into a new shell.
    with sqlite3.connect(tmp_path / "demo" / "warehouse.db") as db:
        views = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='view'")}
    assert {model.name for model in discover()} <= views
    tried = out.split("\nTry, in another shell", 1)[1].splitlines()[1:]
    commands = [line.strip() for line in tried if line.startswith("  ")]
    assert commands[0].startswith("source ") and len(commands) == 4
    result = in_a_new_shell(commands, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "invoice(s), total" in result.stdout and "demo: last successful sync 20" in result.stdout
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
