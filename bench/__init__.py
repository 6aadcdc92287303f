"""Benchmarks: consumer throughput against a plain reader (``python -m bench``), loop latency."""
