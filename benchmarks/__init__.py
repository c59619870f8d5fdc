"""Benchmarks: throughput harness, naive baseline, memory check, charts (not part of the package)."""
