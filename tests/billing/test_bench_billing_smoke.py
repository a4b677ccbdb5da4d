"""Keeps benchmarks/bench_billing.py from rotting: every measurement and the report at a tiny
size, in this process. No timing is asserted (the machine is shared)."""

from __future__ import annotations

from benchmarks import bench_billing


def test_the_billing_benchmark_runs_at_a_tiny_size():
    def worker(what: str, customers: int, settings: str = "default") -> dict:
        return bench_billing.worker(what, customers, settings)

    results = {
        "engine_1m": worker("engine", 30),
        "engine_1m_other": worker("engine", 30, "other"),
        "engine_1m_shuffled": worker("engine-shuffled", 30),
        "engine_1m_decimal": worker("engine-decimal", 30),
        "engine_1m_warehouse": worker("engine-warehouse", 30),
        "engine_100k": worker("engine", 3),
        "oracle_100k": worker("oracle", 3),
    }
    assert results["oracle_100k"]["oracle_agrees"]
    same = ("invoices", "held", "lines", "rejects", "total_cents")
    for name in (
        "engine_1m_shuffled",
        "engine_1m_decimal",
        "engine_1m_warehouse",
    ):
        assert [results[name][k] for k in same] == [results["engine_1m"][k] for k in same]
    for name in ("engine_1m", "engine_100k"):  # as run_median reports them
        results[name]["engine_cpu_s_runs"] = [results[name]["engine_cpu_s"]] * 3
    assert len(results["oracle_100k"]["oracle_cpu_s_runs"]) == bench_billing.REPEATS
    report = bench_billing.markdown(results, "bench")
    assert report.startswith("## Billing engine")
    assert "\n## " not in report[1:]  # one section: --write replaces it whole
    assert "| engine ≥ 50× the oracle" in report and "Why two forms" in report
    assert "in both forms and in random order: yes" in report
    assert results["engine_1m"]["engine_again_cpu_s"] > 0
    assert "medians: the engine of 3 runs" in report


def test_the_repair_scenario_runs_at_a_tiny_size():
    baseline = bench_billing.worker("engine", 300, "default")
    repairs = bench_billing.worker("engine-repairs", 300, "default")
    assert baseline["repair_lines"] == 0
    assert repairs["repair_lines"] > 0 and repairs["repaired_products"] > 0
    for result in (baseline, repairs):
        result["engine_cpu_s_runs"] = [result["engine_cpu_s"]] * bench_billing.REPEATS
    report = bench_billing.repairs_markdown(baseline, repairs, "bench --repairs")
    assert report.startswith("## Billing engine: repairs")
    assert "\n## " not in report[1:]
