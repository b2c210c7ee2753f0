"""The Hénon–Heiles system: a classic two-degree-of-freedom model of mixed regular/chaotic motion."""

from __future__ import annotations

import math

import torch

from canonflow.phase_space import join
from canonflow.systems.base import HamiltonianSystem, uniform_draws
from canonflow.validation import check_real

__all__ = ["HenonHeiles"]


class HenonHeiles(HamiltonianSystem):
    """The Hénon–Heiles Hamiltonian (``n = 2``).

    ``H(q, p) = ½(p₁² + p₂²) + ½(q₁² + q₂²) + q₁²q₂ − q₂³/3``

    The energy is the only conserved quantity (the system is not integrable). Orbits with
    ``H < 1/6`` (:attr:`escape_energy`) starting inside the triangle bounded by the saddles stay bounded.

    ``sample_initial`` draws ``q`` uniformly in the disc ``|q| ≤ 0.3`` (where ``V < 0.07``), an energy
    ``E ~ U(V(q), max_energy)`` with ``max_energy = 0.125`` by default, and ``p`` of norm ``√(2(E − V(q)))``
    in a uniformly random direction: bounded orbits below the escape energy.
    """

    name = "henon_heiles"
    separable = True
    escape_energy: float = 1.0 / 6.0

    def __init__(self, max_energy: float = 0.125) -> None:
        super().__init__(2)
        self.max_energy = check_real(max_energy, "max_energy", "HenonHeiles", positive=True)
        if self.max_energy >= self.escape_energy:
            raise ValueError(f"HenonHeiles: expected max_energy < 1/6 (bounded orbits), got {self.max_energy}")
        if self.max_energy <= 0.07:
            raise ValueError(
                f"HenonHeiles: expected max_energy > 0.07 (above V on the sampling disc), got {self.max_energy}"
            )

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        q1, q2 = q[:, 0], q[:, 1]
        return 0.5 * (q1 * q1 + q2 * q2) + q1 * q1 * q2 - q2**3 / 3.0

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        radius = 0.3 * torch.sqrt(uniform_draws((num,), 0.0, 1.0, generator))
        angle = uniform_draws((num,), 0.0, 2 * math.pi, generator)
        q = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)
        v = self._potential(q)
        energy = v + (self.max_energy - v) * uniform_draws((num,), 0.0, 1.0, generator)
        speed = torch.sqrt(2.0 * (energy - v))
        direction = uniform_draws((num,), 0.0, 2 * math.pi, generator)
        p = torch.stack([speed * torch.cos(direction), speed * torch.sin(direction)], dim=-1)
        return join(q, p)

    def _params(self) -> str:
        return f"max_energy={self.max_energy}"
