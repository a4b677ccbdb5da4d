"""`datagate`: the operators' command line.

Expected failures (bad configuration, an unknown portal, an unreachable service) print one
line and exit non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from datagate_pipelines.config import load_portals
from datagate_pipelines.errors import DatagateError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def expected_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn DatagateError into `error: <message>` and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DatagateError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Datagate billing sync: HaloPSA → invoices → HaloPSA and QuickBooks Online."""


@main.group()
def portals() -> None:
    """Portal configuration and health."""


@portals.command("check")
@click.option("--portal", "portal_id", help="Check only this portal.")
@expected_errors
def portals_check(portal_id: str | None) -> None:
    """Validate portals.yaml (and, per portal, its environment)."""
    registry = load_portals()
    failed = False
    for error in registry.errors:
        if portal_id in (None, error.portal_id):
            click.echo(f"FAIL {error}")
            failed = True
    for pid in registry.ids:
        if portal_id not in (None, pid):
            continue
        portal = registry.get(pid)
        try:
            portal.halopsa_credentials()
            if portal.settings.qbo is not None:
                portal.qbo_credentials()
        except DatagateError as exc:
            click.echo(f"FAIL {exc}")
            failed = True
            continue
        click.echo(f"ok   portal {pid}: configuration valid")
    if portal_id and portal_id not in registry.ids and not failed:
        raise DatagateError(f"portal {portal_id}: not in {registry.path}")
    if failed:
        sys.exit(1)


def dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", instance_yaml)
    return home


def run_dagster_dev(host: str, port: int) -> int:
    """Run `dagster dev` in the foreground until Ctrl-C; returns its exit status."""
    home = dagster_home()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    click.echo(f"Dagster UI: http://{host}:{port}  (DAGSTER_HOME={home}; Ctrl-C stops it)")
    # A new session gets default signal dispositions, so SIGINT reaches every child.
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
        env=env,
        start_new_session=True,
    )
    try:
        return process.wait()
    except KeyboardInterrupt:
        os.killpg(process.pid, signal.SIGINT)
        try:
            return process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@expected_errors
def demo(host: str, port: int) -> None:
    """Run the demo and keep the Dagster UI running."""
    sys.exit(run_dagster_dev(host, port))


if __name__ == "__main__":
    main()
