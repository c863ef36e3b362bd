"""Benchmarks: scenarios and the raw limits they are measured against (see BENCHMARKS.md)."""
