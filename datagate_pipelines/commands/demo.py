"""`datagate simulators|demo`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from datagate_pipelines.commands.common import EXIT_FAILED_EXPORTS, MAX_LISTED, expected_errors
from datagate_pipelines.demo.pipeline import (
    demo_secrets,
    last_closed_period,
    run_demo_pipeline,
    try_commands,
    write_configuration,
)
from datagate_pipelines.demo.processes import (
    NOT_INSTALLED,
    DemoError,
    default_signals,
    interruptible,
    simulators_installed,
    start_simulators,
    stop,
)
from datagate_pipelines.orchestration.instance import PROJECT_ROOT, dagster_home


def demo_folder() -> Path:
    return Path(
        os.environ.get("DATAGATE_DEMO_DIR") or PROJECT_ROOT / ".datagate" / "demo"
    ).resolve()


def _fresh_folder() -> Path:
    # The simulators start empty each time, so the demo's warehouse starts empty too.
    folder = demo_folder()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _start(customers: int) -> tuple[dict[str, str], list[subprocess.Popen]]:
    if not simulators_installed():  # before anything is written
        raise DemoError(NOT_INSTALLED)
    folder = _fresh_folder()
    credentials = demo_secrets()
    halo, qbo = start_simulators(folder, credentials, customers=customers)
    environment = write_configuration(
        folder, halo.base_url, qbo.base_url, last_closed_period(), credentials, dagster_home()
    )
    os.environ.update(environment)
    click.echo(f"HaloPSA simulator:  {halo.base_url}  (log {folder / 'halopsa-simulator.log'})")
    click.echo(f"QBO simulator:      {qbo.base_url}  (log {folder / 'qbo-simulator.log'})")
    return environment, [halo.process, qbo.process]


@click.command()
@click.option(
    "--customers", default=200, show_default=True, help="Size of the generated HaloPSA tenant."
)
@expected_errors
def simulators(customers: int) -> None:
    """Start the HaloPSA and QBO simulators on loopback with demo data, until Ctrl-C."""
    interruptible()
    _environment, processes = _start(customers)
    click.echo(f"configuration: source {demo_folder() / 'env'}   (Ctrl-C stops the simulators)")
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            stop(process)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option(
    "--customers", default=200, show_default=True, help="Size of the generated HaloPSA tenant."
)
@click.option(
    "--no-ui", is_flag=True, help="Stop after the summary instead of serving the Dagster UI."
)
@expected_errors
def demo(host: str, port: int, customers: int, no_ui: bool) -> None:
    """Simulators + a demo portal + sync + billing + export, a summary, then the Dagster UI."""
    started = time.monotonic()
    interruptible()
    home = dagster_home()
    _environment, processes = _start(customers)
    try:
        summary = run_demo_pipeline(
            demo_folder(), last_closed_period(), lambda text: click.echo(f"• {text}")
        )
        click.echo("\nSummary")
        for line in summary.lines:
            click.echo(f"  {line}")
        click.echo(f"  from start: {time.monotonic() - started:.1f} s")
        for line in summary.failed_exports[:MAX_LISTED]:
            click.echo(f"  export failed: {line}")
        if len(summary.failed_exports) > MAX_LISTED:
            click.echo(f"  and {len(summary.failed_exports) - MAX_LISTED} more")
        click.echo("\nTry, in another shell (the env file sets it up for this demo):")
        for command in try_commands(demo_folder() / "env", last_closed_period()):
            click.echo(f"  {command}")
        if no_ui and summary.failed_exports:
            sys.exit(EXIT_FAILED_EXPORTS)
        if not no_ui:
            click.echo(
                f"\nDagster UI: http://{host}:{port}  (DAGSTER_HOME={home}; Ctrl-C stops everything)"
            )
            sys.exit(run_dagster_dev(host, port))
    finally:
        for process in processes:
            stop(process)


def run_dagster_dev(host: str, port: int) -> int:
    """`dagster dev` in the foreground until Ctrl-C; SIGINT reaches all of its children."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            host,
            "-p",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        start_new_session=True,
        preexec_fn=default_signals,
    )
    try:
        return process.wait()
    except KeyboardInterrupt:
        stop(process, timeout=60)
        return 0


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
def ui(host: str, port: int) -> None:
    """The Dagster UI (and daemon) on the configured instance, until Ctrl-C."""
    interruptible()
    home = dagster_home()
    click.echo(f"Dagster UI: http://{host}:{port}  (DAGSTER_HOME={home})")
    sys.exit(run_dagster_dev(host, port))
