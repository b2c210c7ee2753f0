"""``canonflow/systems/coupled.py``: the non-separable ``CoupledOscillator``: exact flow, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import gen

from canonflow.systems import CoupledOscillator
from systems.reference import reference_solution


def test_coupled_oscillator_exact_flow() -> None:
    system = CoupledOscillator(0.6)
    x0 = system.sample_initial(4, generator=gen(9))
    period = 2 * math.pi / float(system.frequencies())
    traj = reference_solution(system, x0, np.array([0.0, 2.1, period]))
    assert torch.allclose(system.exact_flow(x0, 2.1), traj[:, 1], atol=1e-10)
    assert torch.allclose(traj[:, 2], x0, atol=1e-9)


def test_non_separable_raises() -> None:
    system = CoupledOscillator(0.3)
    assert not system.separable
    with pytest.raises(NotImplementedError, match="coupled_oscillator"):
        system.kinetic(torch.zeros(2, 1, dtype=torch.float64))
    with pytest.raises(NotImplementedError, match="coupled_oscillator"):
        system.potential(torch.zeros(2, 1, dtype=torch.float64))


def test_bad_coupling() -> None:
    with pytest.raises(ValueError, match="alpha"):
        CoupledOscillator(alpha=1.0)
