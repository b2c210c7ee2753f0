"""The simple pendulum, with its exact (elliptic-integral) frequency."""

from __future__ import annotations

import math

import torch

from canonflow.phase_space import join
from canonflow.systems.base import HamiltonianSystem, uniform_draws
from canonflow.validation import check_real

__all__ = ["Pendulum", "complete_elliptic_k"]


def complete_elliptic_k(m: torch.Tensor, iterations: int = 40) -> torch.Tensor:
    """The complete elliptic integral of the first kind ``K(m) = ∫_0^{π/2} dφ / √(1 − m sin²φ)``, ``m < 1``.

    Computed as ``K(m) = π / (2 AGM(1, √(1 − m)))`` with the arithmetic–geometric mean (differentiable,
    elementwise, any shape). ``K(m) → ∞`` as ``m → 1``.
    """
    a = torch.ones_like(m)
    b = torch.sqrt(torch.clamp(1.0 - m, min=0.0))
    for _ in range(iterations):
        a, b = 0.5 * (a + b), torch.sqrt(a * b)
    return math.pi / (2.0 * a)


class Pendulum(HamiltonianSystem):
    """A planar pendulum of unit mass, length ``l`` and gravity ``g``, in the angle ``q`` (one degree of freedom).

    ``H(q, p) = p²/2 + ω₀² (1 − cos q)``, ``ω₀² = g/l``

    (the angle's equation of motion is ``q̈ = −(g/l) sin q``; ``p = q̇``). With the defaults
    ``H = p²/2 + 1 − cos q``. The energy is the only conserved quantity. With ``m = H / (2ω₀²)`` the
    motion librates for ``m < 1`` with angular frequency ``ω = π ω₀ / (2 K(m))`` and rotates for ``m > 1``
    with ``ω = π ω₀ √m / K(1/m)`` (the frequency of ``q`` advancing by ``2π``); see :meth:`frequencies`.

    ``sample_initial`` draws ``q ~ U(−π/2, π/2)`` and ``p ~ U(−ω₀, ω₀)``: librations with ``H ≤ 1.5 ω₀²``.
    """

    name = "pendulum"
    separable = True

    def __init__(self, g: float = 1.0, l: float = 1.0) -> None:
        super().__init__(1)
        self.g = check_real(g, "g", "Pendulum", positive=True)
        self.l = check_real(l, "l", "Pendulum", positive=True)
        self.omega0 = math.sqrt(self.g / self.l)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        return self.omega0**2 * (1.0 - torch.cos(q[:, 0]))

    @property
    def separatrix_energy(self) -> float:
        """The energy ``2ω₀²`` of the separatrix between libration and rotation."""
        return 2.0 * self.omega0**2

    def frequencies(self, x: torch.Tensor) -> torch.Tensor:
        """The exact angular frequency of the orbit through each point, shape ``(B,)``.

        Libration (``m = H/(2ω₀²) < 1``): ``ω = π ω₀ / (2 K(m))``; rotation (``m > 1``):
        ``ω = π ω₀ √m / K(1/m)``; ``ω → 0`` at the separatrix ``m = 1``.
        """
        self._check_x(x, "frequencies")
        m = self.hamiltonian(x) / self.separatrix_energy
        librating = m < 1.0
        m_lib = torch.where(librating, m, torch.zeros_like(m))
        m_rot = torch.where(librating, torch.ones_like(m) * 2.0, m)
        w_lib = math.pi * self.omega0 / (2.0 * complete_elliptic_k(m_lib))
        w_rot = math.pi * self.omega0 * torch.sqrt(m_rot) / complete_elliptic_k(1.0 / m_rot)
        return torch.where(librating, w_lib, w_rot)

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        q = uniform_draws((num, 1), -math.pi / 2, math.pi / 2, generator)
        p = uniform_draws((num, 1), -self.omega0, self.omega0, generator)
        return join(q, p)

    def _params(self) -> str:
        return f"g={self.g}, l={self.l}"
