"""Keeps benchmarks/bench_cli.py from rotting: one round at a tiny size. No timing is
asserted; only that every command ran and which ones loaded Dagster or pandas."""

from __future__ import annotations

import pytest

from benchmarks import bench_cli


@pytest.mark.slow
def test_the_cli_benchmark_runs_at_a_tiny_size():
    results = bench_cli.main(["--runs", "1", "--customers", "5"])
    [variant] = results["variants"]
    assert set(variant.wall) == set(bench_cli.COMMANDS)
    assert all(loaded == [] for loaded in variant.loaded.values())  # neither Dagster nor pandas
    text = results["markdown"]
    assert text.startswith("## Command line\n\nCommand: `.venv/bin/python benchmarks/bench_cli.py")
    for name in bench_cli.COMMANDS:
        assert f"| `{name}` |" in text
