"""Benchmark harness: chatserver against plain Daphne, uvicorn, the reference package and a bare
Autobahn ceiling. Run ``python -m bench.run --help``."""
