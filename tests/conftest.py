"""Make `tests/support` importable as `support` for the lab, integration and fault tests."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    config.addinivalue_line("markers", "lab_rebuild: tears the lab down or kills it, then rebuilds it")
