"""The classical 4th-order Runge–Kutta method for ``ẋ = Ω∇H(x)``: accurate, but not symplectic (a baseline)."""

from __future__ import annotations

import torch

from canonflow.integrators.base import Hamiltonian, HamiltonianGradient, Method, StepSize, integrate

__all__ = ["RK4", "rk4"]


def _rk4_step(
    gradient: HamiltonianGradient, x: torch.Tensor, h: StepSize, carry: None, k: int
) -> tuple[torch.Tensor, None]:
    """``x' = x + h/6 (k₁ + 2k₂ + 2k₃ + k₄)`` with ``k₁ = f(x)``, ``k₂ = f(x + h/2 k₁)``, ``k₃ = f(x + h/2 k₂)``,
    ``k₄ = f(x + h k₃)``, ``f = Ω∇H``."""
    f = gradient.field
    k1 = f(x)
    k2 = f(x + 0.5 * h * k1)
    k3 = f(x + 0.5 * h * k2)
    k4 = f(x + h * k3)
    return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4), None


RK4 = Method("rk4", 4, _rk4_step, separable=False, symplectic=False, symmetric=False)


def rk4(
    hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
) -> torch.Tensor:
    """Classical 4th-order Runge–Kutta for ``ẋ = Ω∇H(x)``, any ``H``; a **non-symplectic** baseline.

    ``k₁ = f(x)``, ``k₂ = f(x + h/2 k₁)``, ``k₃ = f(x + h/2 k₂)``, ``k₄ = f(x + h k₃)``,
    ``x' = x + h/6 (k₁ + 2k₂ + 2k₃ + k₄)``. Accurate (``O(h⁴)``) but its energy error drifts secularly over
    long runs. Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    return integrate(RK4, hamiltonian, x0, step_size, steps, trajectory=trajectory)
