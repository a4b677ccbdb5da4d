"""Keeps benchmarks/bench_bulk_writes.py from rotting: it runs at a tiny size on the real
PostgreSQL. No timings are asserted (the machine is shared); only that both paths ran and
stored the same rows."""

from __future__ import annotations

from benchmarks import bench_bulk_writes


def test_the_bulk_writes_benchmark_runs_at_a_tiny_size(postgres_schema_url, capsys):
    results = bench_bulk_writes.main(["--rows", "300"])
    assert results["before"]["check"] == results["after"]["check"]
    assert results["after"]["check"]["count"] == 300
    assert results["after"]["check"]["lines"]["count"] == 300
    out = capsys.readouterr().out
    assert out.startswith("## Bulk writes on PostgreSQL") and "**NO**" not in out
