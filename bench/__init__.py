"""make bench: the benchmark (run.py runs it; measure, charts and report are its parts)."""
