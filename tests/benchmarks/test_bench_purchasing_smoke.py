"""Keeps benchmarks/bench_purchasing.py from rotting: it runs at a tiny size. No timings are
asserted (the machine is shared); only that it ran, created each document once, and met
its call targets."""

from __future__ import annotations

import pytest

from benchmarks import bench_purchasing

# It starts the QBO simulator as a process on loopback.
pytestmark = pytest.mark.e2e


@pytest.mark.slow
def test_the_purchasing_benchmark_runs_at_a_tiny_size(capsys):
    result = bench_purchasing.main(["--suppliers", "60", "--orders", "40", "--window", "1"])
    assert result["in_qbo"] == {"Vendor": 60, "PurchaseOrder": 40, "Bill": 16}
    assert result["vendors"]["failed"] == 0 and result["clashes"] == 1
    out = capsys.readouterr().out
    assert out.startswith("## Purchasing export") and "**NO**" not in out
