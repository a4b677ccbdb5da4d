"""Keeps benchmarks/bench_payments.py from rotting: its main function at a tiny size.

No timings are asserted (the machine is shared); only that every measurement ran, the call
counts follow the budget, and the report has its parts.
"""

from __future__ import annotations

import pytest

from benchmarks import bench_payments

# It serves the receiver and a floor app on loopback.
pytestmark = pytest.mark.e2e


@pytest.mark.slow
def test_the_payments_benchmark_runs_at_a_tiny_size(capsys):
    results = bench_payments.main(["--invoices", "30", "--events", "20", "--postgres", "none"])
    refresh = results["refresh"]
    assert refresh["first"]["mode"] == "open_invoices"
    assert (refresh["quiet"]["mode"], refresh["quiet"]["calls"], refresh["quiet"]["changed"]) == (
        "cdc",
        1,
        0,
    )
    assert refresh["changed"]["applied"] == 30 and refresh["changed"]["changed"] == 60
    assert len(results["floor"]) == 20
    sqlite = results["webhooks"]["SQLite"]
    assert len(sqlite["each"]) == 20 and sqlite["stored"] == 1 + 20 + 20
    report = capsys.readouterr().out
    for part in ("## Payments from QBO", "Command: `", "### QBO calls per refresh", "### Webhook"):
        assert part in report
