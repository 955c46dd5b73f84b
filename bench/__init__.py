"""emgate's benchmarks: `python -m bench [--quick] [--json FILE]` (see bench/__main__.py)."""
