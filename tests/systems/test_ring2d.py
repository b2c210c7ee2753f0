"""``canonflow/systems/ring2d.py``: the exact free energy and the Boltzmann sampler of the ring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import Z_SCORE, gen
from scipy.integrate import trapezoid

from canonflow.systems import Ring2D


@pytest.mark.statistical
def test_ring2d_free_energy_and_sampler() -> None:
    ring = Ring2D()
    assert round(ring.free_energy(1.0), 4) == -4.3715
    # consistency of Z(β) with the sampler: E_β[H] = d(βF)/dβ
    beta, h = 1.5, 1e-4
    mean_energy = ((beta + h) * ring.free_energy(beta + h) - (beta - h) * ring.free_energy(beta - h)) / (2 * h)
    x = ring.sample_boltzmann(40000, beta=beta, generator=gen(15))
    energy = ring(x)
    assert energy.mean().item() == pytest.approx(mean_energy, abs=Z_SCORE * energy.std().item() / math.sqrt(40000))
    # radial law: r has density ∝ r exp(−β(r−2)²/0.32); mean r = ∫ r² ... / ∫ r ...
    r = x[:, :2].norm(dim=-1)
    grid = np.linspace(0.0, 6.0, 200001)
    dens = grid * np.exp(-beta * (grid - 2.0) ** 2 / 0.32)
    mean_r = trapezoid(grid * dens, grid) / trapezoid(dens, grid)
    assert r.mean().item() == pytest.approx(mean_r, abs=Z_SCORE * r.std().item() / 200)
    angle = torch.atan2(x[:, 1], x[:, 0])
    assert abs(torch.cos(angle).mean().item()) < Z_SCORE * torch.cos(angle).std().item() / 200
    assert torch.allclose(ring.log_density_q(x[:, :2]), -ring.potential(x[:, :2]))
