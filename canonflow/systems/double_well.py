"""The symmetric quartic double well."""

from __future__ import annotations

import math

import torch
from scipy import integrate

from canonflow.phase_space import join
from canonflow.systems.base import HamiltonianSystem, uniform_draws

__all__ = ["DoubleWell"]


class DoubleWell(HamiltonianSystem):
    """A particle of unit mass in a symmetric double-well potential (one degree of freedom).

    ``H(q, p) = p²/2 + q⁴/4 − q²/2``

    Minima at ``q = ±1`` with ``V = −1/4``; the barrier at ``q = 0`` has ``V = 0`` (:attr:`barrier_energy`).
    The energy is the only conserved quantity.

    ``sample_initial`` draws ``q ~ U(−1.5, 1.5)`` and ``p ~ U(−1, 1)`` (orbits both inside one well and
    over the barrier).
    """

    name = "double_well"
    separable = True
    barrier_energy: float = 0.0

    def __init__(self) -> None:
        super().__init__(1)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        q2 = q[:, 0] ** 2
        return 0.25 * q2 * q2 - 0.5 * q2

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        return join(uniform_draws((num, 1), -1.5, 1.5, generator), uniform_draws((num, 1), -1.0, 1.0, generator))

    def free_energy(self, beta: float = 1.0) -> float:
        """``F(β) = −(1/β) ln Z``, ``Z = ∫ e^{−β(q⁴/4 − q²/2)} dq · √(2π/β)`` (quadrature, relative tolerance 1e-12)."""
        value, _ = integrate.quad(lambda q: math.exp(-beta * (q**4 / 4 - q**2 / 2)), -math.inf, math.inf, epsrel=1e-12)
        return -(math.log(value) + 0.5 * math.log(2 * math.pi / beta)) / beta

    def _params(self) -> str:
        return ""
