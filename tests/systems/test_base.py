"""``canonflow/systems/base.py``: what every system inherits (conservation along the exact flow, Poisson brackets
with H, dtype and gradients, reproducible initial conditions, input validation), checked on every registered
system."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from randomness import gen

from canonflow.phase_space import hamiltonian_vector_field, poisson_bracket
from canonflow.systems import HarmonicOscillator, available_systems, get_system
from systems.reference import CASES, IDS, reference_solution


@pytest.mark.parametrize(("name", "kwargs", "t_end"), CASES, ids=IDS)
def test_conserved_by_reference_solution(name: str, kwargs: dict, t_end: float) -> None:
    system = get_system(name, **kwargs)
    x0 = system.sample_initial(3, generator=gen(1))
    traj = reference_solution(system, x0, np.linspace(0.0, t_end, 5))
    quantities = system.conserved_quantities()
    assert "energy" in quantities
    for key, quantity in quantities.items():
        start = quantity(x0)
        scale = start.abs().max().clamp_min(1e-3)
        for i in range(1, traj.shape[1]):
            change = (quantity(traj[:, i]) - start).abs().max() / scale
            assert change <= 1e-8, f"{name}: {key} changed by {change:.2e} (relative) by t={t_end * i / 4}"


@pytest.mark.parametrize(("name", "kwargs", "t_end"), CASES, ids=IDS)
def test_poisson_brackets_with_energy_vanish(name: str, kwargs: dict, t_end: float) -> None:
    system = get_system(name, **kwargs)
    x = system.sample_initial(16, generator=gen(2))
    grad_h = hamiltonian_vector_field(system, x).norm(dim=-1)
    for key, quantity in system.conserved_quantities().items():
        grad_q = hamiltonian_vector_field(quantity, x).norm(dim=-1)
        bracket = poisson_bracket(quantity, system, x)
        assert (bracket.abs() <= 1e-10 * (1.0 + grad_q * grad_h)).all(), f"{name}: {{{key}, H}} = {bracket}"
    # the check has teeth: a coordinate is not conserved
    assert poisson_bracket(lambda y: y[:, 0], system, x).abs().max() > 1e-3


@pytest.mark.parametrize("name", available_systems())
def test_dtype_and_gradients(name: str) -> None:
    system = get_system(name)
    x = system.sample_initial(4, generator=gen(5), dtype=torch.float32)
    assert x.dtype == torch.float32 and x.shape == (4, 2 * system.n)
    x.requires_grad_(True)
    energy = system(x)
    assert energy.dtype == torch.float32 and energy.shape == (4,)
    energy.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for quantity in system.conserved_quantities().values():
        assert quantity(x.detach()).dtype == torch.float32


@pytest.mark.parametrize("name", available_systems())
def test_sample_initial_reproducible(name: str) -> None:
    system = get_system(name)
    a = system.sample_initial(5, generator=gen(6))
    b = system.sample_initial(5, generator=gen(6))
    c = system.sample_initial(5, generator=gen(7))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isfinite(system(a)).all()


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("name", available_systems())
def test_wrong_width_names_the_system(name: str) -> None:
    system = get_system(name)
    bad = torch.zeros(3, 2 * system.n + 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=type(system).__name__):
        system.hamiltonian(bad)
    with pytest.raises(ValueError, match="last dimension"):
        system(bad)
    if system.separable:
        with pytest.raises(ValueError, match=name):
            system.potential(torch.zeros(3, system.n + 1, dtype=torch.float64))


def test_bad_inputs() -> None:
    system = HarmonicOscillator(2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        system.hamiltonian(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        system(torch.full((2, 4), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        system(torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="num"):
        system.sample_initial(0)
