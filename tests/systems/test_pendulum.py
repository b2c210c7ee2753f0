"""``canonflow/systems/pendulum.py``: the exact frequency below and above the separatrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from canonflow.systems import Pendulum
from systems.reference import reference_solution


@pytest.mark.parametrize("energy_fraction", [0.2, 0.9, 1.6])
def test_pendulum_frequency(energy_fraction: float) -> None:
    system = Pendulum(g=2.0, l=0.5)
    w0 = system.omega0
    p0 = math.sqrt(2 * energy_fraction * system.separatrix_energy)  # start at q = 0 with H = fraction · 2ω₀²
    x0 = torch.tensor([[0.0, p0]], dtype=torch.float64)
    omega = float(system.frequencies(x0))
    if energy_fraction < 1:  # small-amplitude limit is approached from below
        assert omega < w0
    period = 2 * math.pi / omega
    traj = reference_solution(system, x0, np.array([0.0, 0.5 * period, period]))
    shift = 0.0 if energy_fraction < 1 else 2 * math.pi
    assert traj[0, 2, 0].item() == pytest.approx(shift, abs=1e-8)
    assert traj[0, 2, 1].item() == pytest.approx(p0, abs=1e-8)
    assert abs(traj[0, 1, 1].item() - p0) > 1e-2
