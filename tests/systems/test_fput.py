"""``canonflow/systems/fput.py``: normal modes and their energies, conserved only by the linear chain."""

from __future__ import annotations

import numpy as np
import torch
from randomness import gen

from canonflow.systems import FPUT
from systems.reference import reference_solution


def test_fput_normal_modes() -> None:
    fput = FPUT(N=7)
    h = fput.normal_modes()
    assert torch.allclose(h @ h, torch.eye(7, dtype=torch.float64), atol=1e-12)
    stiffness = 2 * torch.eye(7, dtype=torch.float64) - torch.roll(torch.eye(7), 1, 0).double()
    stiffness = stiffness - torch.roll(torch.eye(7), -1, 0).double()
    w = fput.normal_mode_frequencies()
    assert torch.allclose(h @ stiffness @ h, torch.diag(w**2), atol=1e-12)
    x = fput.sample_initial(4, generator=gen(17))
    assert torch.allclose(fput.normal_mode_energies(x).sum(-1), fput(x), rtol=1e-12)
    names = set(fput.conserved_quantities())
    assert {f"mode_energy_{k}" for k in range(7)} <= names
    assert not any(k.startswith("mode_energy") for k in FPUT(N=7, beta=1.0).conserved_quantities())


def test_fput_linear_chain_conserves_each_mode_energy_but_nonlinear_does_not() -> None:
    linear, nonlinear = FPUT(N=8), FPUT(N=8, alpha=0.0, beta=5.0)
    x0 = linear.sample_initial(2, generator=gen(18))
    times = np.array([0.0, 20.0])
    e0 = linear.normal_mode_energies(x0)
    lin = linear.normal_mode_energies(reference_solution(linear, x0, times)[:, -1])
    assert torch.allclose(lin, e0, atol=1e-10)
    nonlin = linear.normal_mode_energies(reference_solution(nonlinear, x0, times)[:, -1])
    assert (nonlin - e0).abs().max() > 1e-3
