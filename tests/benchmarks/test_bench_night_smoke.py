"""Keeps benchmarks/bench_night.py from rotting: three portals through the real deployment
shape (code server, daemon, webserver, PostgreSQL), without the injected faults.

It takes minutes (the daemon ticks the schedules at the next whole minutes), so it runs only
with DATAGATE_BENCH_NIGHT=1. No timings are asserted (the machine is shared): only the
night's invariants and the report's parts.
"""

from __future__ import annotations

import os

import pytest

from benchmarks import bench_night

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("DATAGATE_BENCH_NIGHT") != "1",
        reason="starts Dagster's daemon, webserver and code server for minutes: "
        "set DATAGATE_BENCH_NIGHT=1",
    ),
]


def test_a_night_of_three_portals_keeps_its_invariants(capsys):
    from tests.conftest import _postgres_or_skip

    _postgres_or_skip()
    results = bench_night.main(["--portals", "3", "--no-faults", "--timeout", "900"])
    summary = bench_night.summarize(results)
    # Per portal: a sync, the closing of last month, the refresh of this one.
    roots = [r for r in results["runs"] if not r["parent"]]
    assert sorted(r["job"] for r in roots) == ["billing"] * 6 + ["portal_sync"] * 3
    assert summary["overlaps"] == []
    assert summary["throttled"] == 0
    # A busy host may time launches out: those runs are retried, never lost.
    assert summary["outcome"]["unrecovered"] == []
    assert summary["bad_billing"] == []
    assert summary["invoices"] > 0
    report = capsys.readouterr().out
    for part in ("## A night of many portals", "Command: `", "makespan ÷ floor", "Faults"):
        assert part in report
