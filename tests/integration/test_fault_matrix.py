"""The fault matrix of issue 15, representative subset (every fault kind at least once): one fault
at one phase of a real migration, then the invariant on every host, the report checked against what
libvirt says, and a re-run that moves a guest that stayed. The whole matrix and seeded random
schedules run in `make chaos` (tests/chaos, docs/reliability.md)."""
import pytest

from support import campaign


@pytest.fixture(autouse=True)
def healthy_lab_after(labh):
    """A fault's damage (a host powered off, a stopped pool) shows as that cell's failure only."""
    yield
    campaign.virtlab("up", "--firewall")


@pytest.mark.parametrize("cell", campaign.cells(campaign.SUBSET), ids=lambda cell: cell.name)
def test_fault_cell(labh, make_guest, cell):
    record = campaign.run_cell(labh, make_guest, cell)
    assert record["outcome"], record
