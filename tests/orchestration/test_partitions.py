"""Billing periods start at the earliest billing_start in portals.yaml (no partition the
UI would show as missing for ever); without a valid portal, at the fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime

import dagster as dg
import pytest

from datagate_pipelines.config import parse_portals
from datagate_pipelines.orchestration.partitions import (
    FALLBACK_FIRST_PERIOD,
    FIRST_PERIOD,
    first_period,
)
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.sensors.portals import portal_registry

ENTRY = """  - id: {id}
    name: {id}
    billing_start: {start}
    halopsa: {{client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}}
"""
INVALID = ENTRY.replace("    name:", "    colour: red\n    name:")


def portals_yaml(*entries: tuple[str, str, str]) -> str:
    return "portals:\n" + "".join(
        (INVALID if kind == "invalid" else ENTRY).format(id=pid, start=start)
        for kind, pid, start in entries
    )


TWO_PORTALS = portals_yaml(
    ("valid", "acme", "2026-03"),
    ("valid", "globex", "2025-11"),
    ("invalid", "broken", "2019-01"),  # not a portal: its start does not count
)


def test_the_earliest_start_of_the_valid_portals():
    assert first_period(parse_portals(TWO_PORTALS)) == date(2025, 11, 1)


@pytest.mark.parametrize(
    "text",
    [portals_yaml(("invalid", "broken", "2026-01")), "portals: []\n"],
    ids=["only an invalid portal", "no portal"],
)
def test_without_a_valid_portal_the_fallback(text):
    assert first_period(parse_portals(text)) == FALLBACK_FIRST_PERIOD


@pytest.mark.parametrize("text", [None, "portals: [\n"], ids=["missing file", "broken YAML"])
def test_without_a_readable_file_the_fallback(tmp_path, monkeypatch, text):
    path = tmp_path / "portals.yaml"
    if text is not None:
        path.write_text(text)
    monkeypatch.setenv("DATAGATE_PORTALS_FILE", str(path))
    assert first_period() == FALLBACK_FIRST_PERIOD


PARTITIONS_OF_THE_CODE_LOCATION = """
import json
from datagate_pipelines.definitions import defs
billing = defs.get_job_def("billing").partitions_def
periods = billing.get_partitions_def_for_dimension("period")
print(json.dumps({"first": periods.get_first_partition_key(), "keys": len(periods.get_partition_keys())}))
"""


@pytest.mark.slow  # loads the code location in a process of its own
def test_the_code_location_starts_its_periods_there(tmp_path):
    path = tmp_path / "portals.yaml"
    path.write_text(TWO_PORTALS)
    result = subprocess.run(
        [sys.executable, "-c", PARTITIONS_OF_THE_CODE_LOCATION],
        env={**os.environ, "DATAGATE_PORTALS_FILE": str(path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    today = datetime.now(UTC).date()
    # 2025-11 through the open month (end_offset=1), nothing earlier
    months = (today.year - 2025) * 12 + today.month - 11 + 1
    assert found == {"first": "2025-11-01", "keys": months}


def test_the_portal_registry_warns_of_a_start_before_the_first_partition(
    tmp_path, engine_url, instance, capsys
):
    (tmp_path / "portals.yaml").write_text(
        portals_yaml(("valid", "old", "2000-01"), ("valid", "acme", "2026-07"))
    )
    res = {
        "portals": PortalsResource(portals_file=str(tmp_path / "portals.yaml")),
        "warehouse": WarehouseResource(database_url=engine_url),
    }
    portal_registry(dg.build_sensor_context(instance=instance, resources=res))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "billing_start" in line]
    assert len(warnings) == 1 and warnings[0].endswith(
        f"portal old: billing_start 2000-01 is before the first period partition "
        f"{FIRST_PERIOD:%Y-%m}; reload the code location to add its periods"
    )
