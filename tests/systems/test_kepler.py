"""``canonflow/systems/kepler.py``: orbit sampling, frequencies, the LRL vector, 2D and 3D."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import gen

from canonflow.phase_space import hamiltonian_vector_field, poisson_bracket, split
from canonflow.systems import Kepler
from systems.reference import reference_solution


def test_bracket_detects_a_wrong_lrl_formula() -> None:
    kepler = Kepler()
    x = kepler.sample_initial(8, generator=gen(3))

    def wrong_lrl_x(y: torch.Tensor) -> torch.Tensor:  # sign of the radial term flipped
        q, p = split(y)
        ell = q[:, 0] * p[:, 1] - q[:, 1] * p[:, 0]
        return p[:, 1] * ell + q[:, 0] / q.norm(dim=-1)

    assert poisson_bracket(wrong_lrl_x, kepler, x).abs().max() > 1e-2


@pytest.mark.statistical
def test_kepler_sample_orbits() -> None:
    kepler = Kepler(k=1.3)
    x = kepler.sample_orbits(2000, energy_range=(-0.7, -0.4), eccentricity_range=(0.2, 0.6), generator=gen(10))
    energy, ecc, ell = kepler(x), kepler.eccentricity(x), kepler.angular_momentum(x)
    assert energy.min() >= -0.7 - 1e-12 and energy.max() <= -0.4 + 1e-12
    assert energy.max() - energy.min() > 0.25  # spread over the range
    assert ecc.min() >= 0.2 - 1e-10 and ecc.max() <= 0.6 + 1e-10 and ecc.max() - ecc.min() > 0.35
    assert (ell > 0).all()
    a = kepler.semi_major_axis(x)
    assert torch.allclose(ell**2, kepler.k * a * (1 - ecc**2), rtol=1e-10)
    # random phase: with a uniform mean anomaly exactly half of the time is spent moving outwards
    q, p = split(x)
    outward = ((q * p).sum(-1) > 0).double().mean().item()
    assert outward == pytest.approx(0.5, abs=0.05)
    # random orientation: the pericentre direction (LRL vector) is isotropic
    lrl = kepler.lrl_vector(x)
    angle = torch.atan2(lrl[:, 1], lrl[:, 0])
    assert abs(torch.cos(angle).mean().item()) < 0.08 and abs(torch.sin(angle).mean().item()) < 0.08


def test_kepler_frequency_matches_period() -> None:
    kepler = Kepler(k=1.3)
    x0 = kepler.sample_orbits(3, generator=gen(11))
    omega = kepler.frequencies(x0)
    assert torch.allclose(omega, (-2 * kepler(x0)) ** 1.5 / kepler.k)
    for i in range(3):
        period = 2 * math.pi / omega[i].item()
        traj = reference_solution(kepler, x0[i : i + 1], np.array([0.0, 0.5 * period, period]))
        assert torch.allclose(traj[0, 2], x0[i], atol=1e-8)
        assert not torch.allclose(traj[0, 1], x0[i], atol=1e-2)
    with pytest.raises(ValueError, match="bound"):
        kepler.frequencies(torch.tensor([[1.0, 0.0, 0.0, 3.0]], dtype=torch.float64))


def test_kepler_3d_matches_2d_in_plane() -> None:
    k2, k3 = Kepler(d=2), Kepler(d=3)
    x2 = k2.sample_orbits(5, generator=gen(12))
    x3 = k3.sample_orbits(5, generator=gen(12))
    q, p = split(x3)
    assert torch.equal(q[:, :2], split(x2)[0]) and (q[:, 2] == 0).all() and (p[:, 2] == 0).all()
    assert torch.allclose(k3.angular_momentum(x3)[:, 2], k2.angular_momentum(x2))
    assert torch.allclose(k3.lrl_vector(x3)[:, :2], k2.lrl_vector(x2))
    assert torch.allclose(k3(x3), k2(x2))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="d = 2 or 3"):
        Kepler(d=4)
    with pytest.raises(ValueError, match="energy_range"):
        Kepler().sample_orbits(3, energy_range=(-0.5, 0.1))
    with pytest.raises(ValueError, match="eccentricity_range"):
        Kepler().sample_orbits(3, eccentricity_range=(0.1, 1.0))


@pytest.mark.parametrize("d", [2, 3])
def test_closed_form_vector_field_is_hamiltons_equations(d: int) -> None:
    system = Kepler(d, k=1.7)
    x = system.sample_initial(64, generator=torch.Generator().manual_seed(d)).requires_grad_(True)
    field = system.vector_field(x)
    torch.testing.assert_close(field, hamiltonian_vector_field(system.hamiltonian, x), rtol=1e-13, atol=1e-13)
    (gradient,) = torch.autograd.grad(field.sum(), x)  # differentiable, as integrators and losses need
    assert torch.isfinite(gradient).all() and gradient.abs().max() > 0
