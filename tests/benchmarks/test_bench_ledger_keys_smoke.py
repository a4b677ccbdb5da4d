"""Keeps benchmarks/bench_ledger_keys.py from rotting: both shapes take the rows on the real
PostgreSQL, and the key checks are reported apart. No timings are asserted."""

from __future__ import annotations

from benchmarks import bench_ledger_keys


def test_the_ledger_keys_benchmark_runs_at_a_tiny_size(postgres_schema_url, capsys):
    results = bench_ledger_keys.main(["--rows", "200", "--repeat", "1"])
    assert list(results) == list(bench_ledger_keys.SHAPES)
    for runs in results.values():
        assert len(runs) == 1 and {"checks", "insert", "total"} <= set(runs[0])
    assert "| one key (portal, invoice) |" in capsys.readouterr().out
