"""Hand-run benchmarks (not part of CI): ``python -m evaluation.benchmarks.<name>``."""
