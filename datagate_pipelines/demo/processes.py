"""The demo's child processes: the simulators (a separate package, see simulators/) on free loopback ports, started and stopped cleanly."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datagate_pipelines import DatagateError

PORTAL_ID = "demo"
REALM_ID = "9130350000000042"
SEED = 42


class DemoError(DatagateError):
    """The demo could not start (a simulator did not come up, a step failed)."""


@dataclass
class Simulator:
    name: str
    process: subprocess.Popen[str]
    base_url: str


def start_simulator(
    name: str, module: str, args: list[str], log: Path, secrets_env: dict[str, str]
) -> Simulator:
    """Start a simulator on a free loopback port; its first stdout line is its base URL.
    Secrets travel in its environment, not on its (world-readable) command line."""
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0", *args],
        env={**os.environ, **secrets_env},
        stdout=subprocess.PIPE,
        stderr=handle,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    line = process.stdout.readline().strip() if process.stdout else ""
    if not line.startswith("http://127.0.0.1:"):
        process.kill()
        raise DemoError(f"the {name} simulator did not start (see {log})")
    return Simulator(name, process, line)


def default_signals() -> None:
    """In a child: answer SIGINT/SIGTERM normally even if the parent was started in the
    background (which makes the shell ignore SIGINT, and ignored signals are inherited)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def interruptible() -> None:
    """In this process: Ctrl-C and SIGTERM both end the demo cleanly (KeyboardInterrupt)."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def stop(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


SIMULATORS_PACKAGE = "datagate_simulators"
NOT_INSTALLED = (
    "the HaloPSA and QBO simulators are not installed: they are the separate package "
    "datagate-simulators, in the repository's simulators/ folder. From a clone, `make demo` "
    "installs them; or `pip install ./simulators`"
)


def simulators_installed() -> bool:
    return importlib.util.find_spec(SIMULATORS_PACKAGE) is not None


def start_simulators(
    folder: Path, credentials: dict[str, str], *, customers: int
) -> tuple[Simulator, Simulator]:
    """Both simulators, seeded with the demo tenant; a DemoError when they are not installed
    (the product wheel does not ship them)."""
    if not simulators_installed():
        raise DemoError(NOT_INSTALLED)
    halo = start_simulator(
        "HaloPSA",
        f"{SIMULATORS_PACKAGE}.halopsa",
        [
            "--customers", str(customers),
            "--seed", str(SEED),
            "--tenant", "demo",
            f"--client-id={credentials['DEMO_HALO_CLIENT_ID']}",
        ],
        folder / "halopsa-simulator.log",
        {"HALOPSA_SIM_CLIENT_SECRET": credentials["DEMO_HALO_CLIENT_SECRET"]},
    )  # fmt: skip
    qbo = start_simulator(
        "QuickBooks Online",
        f"{SIMULATORS_PACKAGE}.qbo",
        [
            "--realm", REALM_ID,
            "--company-name", "Demo Telecom Books",
            f"--client-id={credentials['DEMO_QBO_CLIENT_ID']}",
        ],
        folder / "qbo-simulator.log",
        {
            "QBO_SIM_CLIENT_SECRET": credentials["DEMO_QBO_CLIENT_SECRET"],
            "QBO_SIM_REFRESH_TOKEN": credentials["DEMO_QBO_REFRESH_TOKEN"],
        },
    )  # fmt: skip
    return halo, qbo
