"""Benchmarks of the API and the engine: `python -m bench` runs them all, `python -m bench.<name>` one of them."""
