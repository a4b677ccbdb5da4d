"""Keeps benchmarks/bench_billing_e2e.py from rotting: a tiny portal billed end to end on
PostgreSQL and SQLite, each in its own process. No timings are asserted (the machine is
shared); only what was billed, finalized and written."""

from __future__ import annotations

import pytest

from benchmarks import bench_billing_e2e


@pytest.mark.slow
def test_the_end_to_end_benchmark_runs_at_a_tiny_size(postgres_schema_url, capsys):
    results = bench_billing_e2e.main(["--customers", "60", "--months", "3"])
    assert [r["kind"] for r in results] == ["postgresql", "sqlite"]
    for r in results:
        assert r["counts"]["invoices"] == 60 == r["finalized"] == r["lookups"]
        assert r["counts"]["lines"] > r["counts"]["ledger_rows"] > 0
        # The baselines wrote exactly the rows the run wrote.
        assert r["baseline"]["invoice_lines"][0] == r["counts"]["lines"]
        assert r["baseline"]["billing_ledger"][0] == r["counts"]["ledger_rows"]
        assert r["baseline"]["audit_events"][0] == r["finalized"]
    postgres, sqlite = results
    assert postgres["counts"] == sqlite["counts"]
    assert capsys.readouterr().out.startswith("## Billing end to end")
