"""Fixtures for integration tests on the lab: a healthy lab, and guests that are removed
afterwards whatever happened."""
import pytest

from support.lab import LabHandle, virtlab


@pytest.fixture(scope="session")
def labh():
    virtlab("up", "--firewall")
    return LabHandle()


@pytest.fixture
def make_guest(labh):
    """make_guest(name, on, *virtlab guest create options) -> name; removed at teardown."""
    made = []

    def make(name, on="host-a", *options):
        virtlab("guest", "rm", name, check=False)
        virtlab("guest", "create", name, "--on", on, *options)
        made.append(name)
        return name

    yield make
    for name in made:
        virtlab("guest", "rm", name, check=False)
