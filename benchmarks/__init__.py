"""Benchmarks: scripts that measure the pipeline and record their figures in BENCHMARKS.md."""
