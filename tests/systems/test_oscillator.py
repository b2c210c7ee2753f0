"""``canonflow/systems/oscillator.py``: ``HarmonicOscillator``'s exact flow, frequencies, actions, free energy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import gen

from canonflow.systems import HarmonicOscillator
from systems.reference import reference_solution


def test_oscillator_exact() -> None:
    system = HarmonicOscillator(3, omega=[0.5, 1.0, 2.5])
    x0 = system.sample_initial(4, generator=gen(8))
    assert torch.allclose(system.frequencies(x0), torch.tensor([0.5, 1.0, 2.5], dtype=torch.float64).expand(4, 3))
    times = np.array([0.0, 1.3, 4.0])
    traj = reference_solution(system, x0, times)
    for i, t in enumerate(times):
        assert torch.allclose(system.exact_flow(x0, float(t)), traj[:, i], atol=1e-10)
    # each oscillator returns after its own period 2π/ω_k (and not after half of it)
    for k, w in enumerate(system.omega):
        back = reference_solution(system, x0, np.array([0.0, math.pi / w, 2 * math.pi / w]))
        idx = [k, k + 3]
        assert torch.allclose(back[:, 2, idx], x0[:, idx], atol=1e-9)
        assert not torch.allclose(back[:, 1, idx], x0[:, idx], atol=1e-3)
    assert torch.allclose(system.actions(x0), system.mode_energies(x0) / torch.tensor(system.omega).double())
    assert system.free_energy(1.0) == pytest.approx(-sum(math.log(2 * math.pi / w) for w in system.omega))


def test_bad_frequencies() -> None:
    with pytest.raises(ValueError, match="length n=2"):
        HarmonicOscillator(2, omega=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="omega"):
        HarmonicOscillator(1, omega=-1.0)
