"""``canonflow/integrators/midpoint.py``: quadratic invariants conserved, non-separable Hamiltonians, and
the convergence error of the implicit solve."""

from __future__ import annotations

import pytest
import torch

from canonflow.integrators import (
    INTEGRATORS,
    ConvergenceError,
    implicit_midpoint,
    rk4,
)
from canonflow.systems import Kepler
from integrators.common import DT, FastOscillator, NonSeparable


def test_implicit_midpoint_conserves_quadratic_energy() -> None:
    x0 = torch.tensor([[1.0, 0.0], [0.3, -2.0]], dtype=DT)
    with torch.no_grad():
        trajectory = implicit_midpoint(FastOscillator(), x0, 0.3, 1000, trajectory=True, tol=1e-15)
    energy = 0.5 * (trajectory**2).sum(-1)
    assert (energy - energy[0]).abs().max().item() < 1e-10


def test_kepler_angular_momentum_is_conserved() -> None:
    system = Kepler(2)
    # Eccentric orbits (e ≈ 0.5 and 0.3).
    x0 = torch.tensor([[1.0, 0.0, 0.0, 1.2], [0.0, 1.0, -1.1, 0.2]], dtype=DT)
    with torch.no_grad():
        midpoint = implicit_midpoint(system, x0, 0.05, 400, trajectory=True, tol=1e-14)
        baseline = rk4(system, x0, 0.05, 400, trajectory=True)
    momentum = system.angular_momentum
    drift = (momentum(midpoint.reshape(-1, 4)) - momentum(x0).repeat(401)).abs().max().item()
    assert drift <= 1e-12, f"implicit midpoint angular momentum drift {drift:.3e}"
    assert (momentum(baseline[-1]) - momentum(x0)).abs().max().item() > 1e-8


@pytest.mark.parametrize("name", ["implicit_midpoint", "rk4"])
def test_general_methods_accept_non_separable_hamiltonians(name: str) -> None:
    x0 = torch.tensor([[1.0, 0.5]], dtype=DT)
    assert torch.isfinite(INTEGRATORS[name](NonSeparable(), x0, 0.1, 3)).all()


def test_implicit_midpoint_convergence_error_carries_residual_and_step() -> None:
    x0 = torch.tensor([[1.0, 0.5], [2.0, 0.0]], dtype=DT)
    with pytest.raises(ConvergenceError, match="implicit_midpoint.*did not converge") as info:
        implicit_midpoint(NonSeparable(), x0, 0.3, 5, max_iter=1, tol=1e-14)
    assert info.value.step == 0
    assert info.value.iterations == 1
    assert info.value.residual > 1e-14
    # A solve that converges fine with the default max_iter.
    assert torch.isfinite(implicit_midpoint(NonSeparable(), x0, 0.3, 5)).all()
    # The step index reported is the one that failed.
    with pytest.raises(ConvergenceError) as info:
        implicit_midpoint(NonSeparable(), torch.tensor([[0.1, 0.1]], dtype=DT), 0.3, 3, max_iter=3, tol=1e-14)
    assert info.value.step >= 0 and info.value.residual > 0
    with pytest.raises(ValueError, match="tol"):
        implicit_midpoint(NonSeparable(), x0, 0.1, 3, tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        implicit_midpoint(NonSeparable(), x0, 0.1, 3, max_iter=0)
