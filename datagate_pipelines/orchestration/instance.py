"""The Dagster instance the CLI and the demo run on: DAGSTER_HOME, made on first use."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

# The checkout this package runs from: deploy/ and workspace.yaml live here.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def dagster_home() -> Path:
    """DAGSTER_HOME (default ./.dagster), created with deploy/dagster.yaml on first use."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", instance_yaml)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def instance() -> dg.DagsterInstance:
    """The instance at DAGSTER_HOME (made if missing)."""
    import dagster as dg  # here, not above: commands that need no run start faster

    dagster_home()
    return dg.DagsterInstance.get()
