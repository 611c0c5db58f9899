"""Simulators of the outside world that run as their own processes (for tests, demos and benchmarks)."""
