"""Keeps benchmarks/bench_ingest.py from rotting: its main function at a tiny size.

No timings are asserted (the machine is shared); only that every measurement ran and the
report has its parts.
"""

from __future__ import annotations

import pytest

from benchmarks import bench_ingest

# It serves the simulator on loopback and runs the portal_sync job (three times).
pytestmark = pytest.mark.e2e

TINY = [
    "--in-process",
    "--customers",
    "20",
    "--rate-requests",
    "5",
    "--rate-window",
    "0.5",
    "--postgres",
    "none",
]
RUN_KEYS = {"snapshot_s", "wall_s", "calls", "statuses", "metadata", "rss_peak_mb"}
HEADINGS = ("## HaloPSA ingest", "Command: `", "### Rate limit off", "### Rate limit on")


@pytest.mark.slow
def test_the_ingest_benchmark_runs_at_a_tiny_size(capsys):
    results = bench_ingest.main(TINY)

    expected = {
        "command",
        "date",
        "machine",
        "tenant",
        "floors",
        "listing",
        "warehouses",
        "limited",
    }
    assert expected <= set(results)
    assert results["tenant"]["records"]["Client"] == 20
    assert len(results["floors"]) == 2
    sqlite = results["warehouses"]["SQLite"]
    assert len(sqlite["runs"]) == 2 and all(set(run) >= RUN_KEYS for run in sqlite["runs"])
    first = sqlite["runs"][0]
    assert first["calls"]["/auth/token"] == 1
    assert first["metadata"]["halo_clients"]["rows"] == 20
    assert sqlite["mirrored"]["halo_clients"] == 20
    (limited,) = results["limited"]
    assert limited["requests"] == 5 and limited["listing"]["rate_limited"] == 0
    assert limited["runs"][0]["statuses"].get("429", 0) == 0
    report = capsys.readouterr().out
    assert all(heading in report for heading in HEADINGS)


@pytest.mark.slow
def test_the_incremental_measurement_runs_at_a_tiny_size(capsys):
    results = bench_ingest.main(
        ["--incremental", "--in-process", "--incremental-sizes", "30", "--postgres", "none"]
    )

    (size,) = results["sizes"]
    runs = size["runs"]
    assert set(runs) == {"first", "full", "unchanged", "changed"}
    assert {r["kind"] for r in runs["full"]["reads"].values()} == {"full"}
    assert runs["unchanged"]["reads"]["halo_clients"]["kind"] == "incremental"
    assert runs["unchanged"]["reads"]["halo_clients"]["records"] == 0
    assert runs["changed"]["reads"]["halo_sites"]["records"] == size["changed"]["Site"] == 1
    # An unchanged tenant: nothing written; 1% changed: only those.
    assert runs["unchanged"]["metadata"]["halo_contracts"]["rows"] == 0
    assert runs["changed"]["metadata"]["halo_contracts"]["rows"] == 1
    report = capsys.readouterr().out
    assert "## HaloPSA incremental sync" in report and "### Per entity" in report
