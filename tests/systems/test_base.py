"""``canonflow/systems/base.py``: what every system inherits (conservation along the exact flow, Poisson brackets
with H, dtype and gradients, reproducible initial conditions, input validation), checked on every registered
system; and systems of one's own from a callable (``from_callable``, ``from_potential``, ``as_system``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import gen

from canonflow.integrators import implicit_midpoint, leapfrog
from canonflow.phase_space import hamiltonian_vector_field, poisson_bracket
from canonflow.systems import HamiltonianSystem, HarmonicOscillator, as_system, available_systems, get_system
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


# ---------------------------------------------------------------------------------------------- your own system


def _half_square(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x * x).sum(-1)


def _oscillator_draws(num: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(num, 4, generator=generator, dtype=torch.float64)


def test_from_potential_is_the_harmonic_oscillator() -> None:
    # V(q) = |q|²/2 with unit masses is HarmonicOscillator(2): the same energies, fields and leapfrog steps, bit
    # for bit
    exact = HarmonicOscillator(2)
    system = HamiltonianSystem.from_potential(_half_square, 2, sample_initial=_oscillator_draws)
    assert isinstance(system, HamiltonianSystem) and system.separable and system.n == 2
    assert system.name == "_half_square" and list(system.conserved_quantities()) == ["energy"]
    x = exact.sample_initial(64, generator=gen(11))
    q, p = x[:, :2], x[:, 2:]
    assert torch.equal(system(x), exact(x))
    assert torch.equal(system.potential(q), exact.potential(q)) and torch.equal(system.kinetic(p), exact.kinetic(p))
    assert torch.equal(system.vector_field(x), exact.vector_field(x))
    assert torch.equal(leapfrog(system, x, 0.1, 50, trajectory=True), leapfrog(exact, x, 0.1, 50, trajectory=True))
    # and it rotates phase space as the exact flow does, to leapfrog's O(h²) error
    assert (leapfrog(system, x, 0.01, 100) - exact.exact_flow(x, 1.0)).abs().max() < 1e-4


def test_from_callable_is_the_harmonic_oscillator_but_not_separable() -> None:
    exact = HarmonicOscillator(2)
    system = HamiltonianSystem.from_callable(_half_square, 2)
    x = exact.sample_initial(64, generator=gen(12))
    torch.testing.assert_close(system(x), exact(x), rtol=1e-15, atol=1e-15)  # one sum instead of T + V: round-off
    assert torch.equal(system.vector_field(x), exact.vector_field(x))
    assert not system.separable
    with pytest.raises(NotImplementedError, match="not separable"):
        system.potential(x[:, :2])
    with pytest.raises(ValueError, match="separable"):
        leapfrog(system, x, 0.1, 5)
    path = implicit_midpoint(system, x, 0.1, 10)  # an implicit method takes any H
    assert (system(path) - system(x)).abs().max() < 1e-9  # the midpoint rule conserves quadratic invariants


def test_from_potential_masses_and_dtype() -> None:
    system = HamiltonianSystem.from_potential(lambda q: (q**4).sum(-1) / 4, 2, mass=[2.0, 0.5], name="quartic")
    x = torch.tensor([[1.0, -2.0, 3.0, 1.5]], dtype=torch.float32, requires_grad=True)
    energy = system(x)
    assert energy.dtype == torch.float32 and energy.shape == (1,)
    assert energy.item() == pytest.approx(9 / 4 + 2.25 / 1 + (1 + 16) / 4)
    field = system.vector_field(x.detach().double())
    expected = torch.tensor([[3.0 / 2.0, 1.5 / 0.5, -1.0, 8.0]], dtype=torch.float64)  # (p/m, −q³)
    assert torch.allclose(field, expected, atol=1e-14)
    assert system.mass == (2.0, 0.5) and "quartic" in repr(system) and "mass=[2.0, 0.5]" in repr(system)


def test_own_sample_initial_is_used_and_checked() -> None:
    system = HamiltonianSystem.from_callable(_half_square, 2, sample_initial=_oscillator_draws)
    a = system.sample_initial(5, generator=gen(3), dtype=torch.float32)
    assert a.dtype == torch.float32 and a.shape == (5, 4)
    assert torch.equal(a, system.sample_initial(5, generator=gen(3), dtype=torch.float32))
    with pytest.raises(NotImplementedError, match=r"'lonely'.*sample_initial=fn\(num, generator\).*initial="):
        HamiltonianSystem.from_potential(_half_square, 2, name="lonely").sample_initial(3)
    wrong = HamiltonianSystem.from_callable(_half_square, 2, sample_initial=lambda num, g: torch.zeros(num, 3))
    with pytest.raises(ValueError, match=r"\(num, 2n\) = \(3, 4\), got \(3, 3\)"):
        wrong.sample_initial(3)
    nan = HamiltonianSystem.from_callable(_half_square, 1, sample_initial=lambda num, g: torch.full((num, 2), math.nan))
    with pytest.raises(ValueError, match="NaN"):
        nan.sample_initial(2)


def test_own_system_bad_inputs_name_the_system() -> None:
    with pytest.raises(TypeError, match="from_callable: expected H"):
        HamiltonianSystem.from_callable(3.0, 1)
    with pytest.raises(TypeError, match="from_potential: expected V"):
        HamiltonianSystem.from_potential("V", 1)
    with pytest.raises(ValueError, match="from_callable: expected n to be a positive int"):
        HamiltonianSystem.from_callable(_half_square, 0)
    with pytest.raises(TypeError, match="from_potential: expected n"):
        HamiltonianSystem.from_potential(_half_square, 1.5)
    with pytest.raises(ValueError, match="from_potential: expected mass > 0"):
        HamiltonianSystem.from_potential(_half_square, 1, mass=0.0)
    with pytest.raises(ValueError, match="length n=2, got 3"):
        HamiltonianSystem.from_potential(_half_square, 2, mass=[1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match="sample_initial"):
        HamiltonianSystem.from_callable(_half_square, 1, sample_initial=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="name"):
        HamiltonianSystem.from_callable(_half_square, 1, name="")
    # the callable's value is checked: (B,) for (B, 2n) or (B, n) inputs, with the system's name in the error
    vector = HamiltonianSystem.from_callable(lambda x: x, 1, name="vector_energy")
    with pytest.raises(ValueError, match=r"'vector_energy'.*\(B, 2n\) to \(B,\) = \(3,\), got \(3, 2\)"):
        vector(torch.zeros(3, 2, dtype=torch.float64))
    summed = HamiltonianSystem.from_potential(lambda q: q.sum(), 1)
    with pytest.raises(ValueError, match=r"'custom'.*V\(q\) must map .* \(3,\), got \(\)"):
        summed.vector_field(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="last dimension"):  # the input is validated as for every system
        HamiltonianSystem.from_callable(_half_square, 2)(torch.zeros(3, 2, dtype=torch.float64))


def test_as_system_wraps_plain_callables() -> None:
    exact = HarmonicOscillator(1)
    assert as_system(exact, None, "who") is exact
    wrapped = as_system(_half_square, 1, "who")
    assert isinstance(wrapped, HamiltonianSystem) and wrapped.n == 1 and wrapped.name == "_half_square"
    with pytest.raises(ValueError, match="who: a plain callable.*n"):
        as_system(_half_square, None, "who")
    with pytest.raises(TypeError, match="who: expected a HamiltonianSystem or a callable"):
        as_system(1.0, 1, "who")
