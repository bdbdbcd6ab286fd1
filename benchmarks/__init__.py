"""Benchmark scripts: run them with ``python -m benchmarks.<name>``; nothing imports them."""
