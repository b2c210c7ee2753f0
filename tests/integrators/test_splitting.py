"""``canonflow/integrators/splitting.py``: bounded energy errors over long runs, the leapfrog formula, separable
Hamiltonians only, and the separable parts alone."""

from __future__ import annotations

import math

import pytest
import torch

from canonflow.integrators import (
    INTEGRATORS,
    leapfrog,
    symplectic_euler,
    yoshida4,
)
from canonflow.systems import CoupledOscillator, Pendulum
from integrators.common import (
    DT,
    STEPS_LONG,
    X0_OSCILLATOR,
    X0_PENDULUM,
    FastOscillator,
    FastPendulum,
    NonSeparable,
    energy_error,
)


@pytest.mark.parametrize(("name", "h"), [("symplectic_euler", 0.1), ("leapfrog", 0.25)])
def test_symplectic_energy_error_stays_bounded_over_2e4_steps(name: str, h: float) -> None:
    system = FastOscillator()
    with torch.no_grad():
        trajectory = INTEGRATORS[name](system, X0_OSCILLATOR, h, STEPS_LONG, trajectory=True)
    error = energy_error(system, trajectory)
    tenth = STEPS_LONG // 10
    early, late = error[:tenth].max().item(), error[-tenth:].max().item()
    assert late <= 1.01 * early, f"{name}: energy error grew from {early:.3e} to {late:.3e}"
    assert error.max().item() < 0.2


@pytest.mark.parametrize(("name", "h", "steps"), [("yoshida4", 0.25, 10_000), ("yoshida6", 0.25, 5_000)])
def test_higher_order_energy_error_stays_bounded(name: str, h: float, steps: int) -> None:
    system = FastPendulum()
    with torch.no_grad():
        error = energy_error(system, INTEGRATORS[name](system, X0_PENDULUM, h, steps, trajectory=True))
    early, late = error[: steps // 10].max().item(), error[-steps // 10 :].max().item()
    assert late <= 1.1 * early + 1e-12, f"{name}: energy error grew from {early:.3e} to {late:.3e}"


def test_symplectic_euler_is_not_symmetric() -> None:
    system = Pendulum()
    x0 = torch.tensor([[1.0, 0.5]], dtype=DT)
    back = symplectic_euler(system, symplectic_euler(system, x0, 0.2, 10), -0.2, 10)
    assert (back - x0).abs().max().item() > 1e-4


@pytest.mark.parametrize("name", ["symplectic_euler", "leapfrog", "yoshida4", "yoshida6"])
def test_splitting_methods_refuse_non_separable_hamiltonians(name: str) -> None:
    x0 = torch.tensor([[1.0, 0.5]], dtype=DT)
    with pytest.raises(ValueError, match=f"{name}.*separable"):
        INTEGRATORS[name](NonSeparable(), x0, 0.1, 3)


def test_leapfrog_matches_explicit_formula_and_uses_analytic_gradient() -> None:
    x0 = torch.tensor([[1.0, 0.5]], dtype=DT)
    q, p, h = 1.0, 0.5, 0.1
    p_half = p - 0.5 * h * math.sin(q)
    q1 = q + h * p_half
    p1 = p_half - 0.5 * h * math.sin(q1)
    expected = torch.tensor([[q1, p1]], dtype=DT)
    torch.testing.assert_close(leapfrog(FastPendulum(), x0, h, 1), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(leapfrog(Pendulum(), x0, h, 1), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(yoshida4(FastPendulum(), x0, h, 2), yoshida4(Pendulum(), x0, h, 2))


@pytest.mark.parametrize("name", ["symplectic_euler", "leapfrog", "yoshida4", "yoshida6"])
def test_splitting_methods_refuse_non_separable_systems(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name}.*separable=False"):
        INTEGRATORS[name](CoupledOscillator(0.5), torch.tensor([[1.0, 0.5]], dtype=DT), 0.1, 3)


class Parts:
    """``H = p²/2 + (1 − cos q)`` with its parts; counts how often the full ``H`` and each part are evaluated."""

    separable = True
    separable_parts = True

    def __init__(self) -> None:
        self.calls = {"full": 0, "kinetic": 0, "potential": 0}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls["full"] += 1
        return self.kinetic(x[:, 1:]) + self.potential(x[:, :1])

    def kinetic(self, p: torch.Tensor) -> torch.Tensor:
        self.calls["kinetic"] += 1
        return 0.5 * p[:, 0] ** 2

    def potential(self, q: torch.Tensor) -> torch.Tensor:
        self.calls["potential"] += 1
        return 1.0 - torch.cos(q[:, 0])


def test_splitting_methods_use_the_separable_parts_alone() -> None:
    x0 = torch.tensor([[1.0, 0.5], [0.2, -0.3]], dtype=DT)
    hamiltonian = Parts()
    path = leapfrog(hamiltonian, x0, 0.1, 4, trajectory=True)
    # L drifts take ∂K/∂p, L + 1 kicks ∂V/∂q (first same as last); the full H is never evaluated
    assert hamiltonian.calls == {"full": 0, "kinetic": 4, "potential": 5}
    torch.testing.assert_close(path, leapfrog(Pendulum(), x0, 0.1, 4, trajectory=True), rtol=0, atol=1e-15)
    hamiltonian.separable_parts = False  # not declared: the full gradient, the same values
    torch.testing.assert_close(leapfrog(hamiltonian, x0, 0.1, 4, trajectory=True), path, rtol=0, atol=1e-15)
    assert hamiltonian.calls["full"] == 9
