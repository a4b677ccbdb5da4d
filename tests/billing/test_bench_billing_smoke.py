"""Keeps benchmarks/bench_billing.py from rotting: every measurement and the report at a tiny
size, in this process. No timing is asserted (the machine is shared)."""

from __future__ import annotations

from benchmarks import bench_billing


def test_the_billing_benchmark_runs_at_a_tiny_size():
    results = {
        "engine_1m": bench_billing.worker("engine", 30, "default"),
        "engine_1m_other": bench_billing.worker("engine", 30, "other"),
        "engine_1m_shuffled": bench_billing.worker("engine-shuffled", 30, "default"),
        "engine_1m_decimal": bench_billing.worker("engine-decimal", 30, "default"),
        "engine_1m_warehouse": bench_billing.worker("engine-warehouse", 30, "default"),
        "engine_100k": bench_billing.worker("engine", 3, "default"),
        "oracle_100k": bench_billing.worker("oracle", 3, "default"),
    }
    assert results["oracle_100k"]["oracle_agrees"]
    same = ("invoices", "held", "lines", "rejects", "total_cents")
    for name in ("engine_1m_shuffled", "engine_1m_decimal", "engine_1m_warehouse"):
        assert [results[name][k] for k in same] == [results["engine_1m"][k] for k in same]
    report = bench_billing.markdown(results, "bench")
    assert report.startswith("## Billing engine")
    assert "\n## " not in report[1:]  # one section: --write replaces it whole
    assert "| engine ≥ 50× the oracle" in report and "Why two forms" in report
    assert "in both forms and in random order: yes" in report
    assert results["engine_1m"]["engine_again_cpu_s"] > 0
