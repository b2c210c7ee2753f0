"""Fixtures shared by the action-angle tests."""

from __future__ import annotations

import pytest

from canonflow.action_angle import birkhoff_chart
from canonflow.systems import CentreOfMassFrame, Toda


@pytest.fixture(scope="session")
def toda_birkhoff_spec() -> dict:
    """The degree-4 Birkhoff chart of the periodic 3-particle Toda lattice at its minimum (costs seconds: built once
    per worker; the tests that use it share an ``xdist_group``)."""
    return birkhoff_chart(CentreOfMassFrame(Toda(3, periodic=True)), [0.0] * 4, circular=[(0, 1)], order=4)
