"""A translation-invariant lattice seen from its centre of mass."""

from __future__ import annotations

import torch

from canonflow.phase_space import join, split
from canonflow.systems.base import HamiltonianSystem
from canonflow.validation import validation

__all__ = ["CentreOfMassFrame"]


class CentreOfMassFrame(HamiltonianSystem):
    """A translation-invariant system of ``N`` unit masses seen from its centre of mass (``n = N − 1``).

    With an orthogonal ``N × N`` matrix ``O`` whose first row is ``(1, …, 1)/√N``, ``(q, p) ↦ (Oq, Op)`` is
    canonical and its first pair is the centre of mass (a free particle whose position grows without bound,
    so it has no action-angle variables). This system keeps the other ``N − 1`` pairs:
    ``H_cm(q', p') = H(Oᵀ[0, q'], Oᵀ[0, p'])``. :meth:`embed` maps its points back to the full lattice.
    """

    separable = True

    def __init__(self, system: HamiltonianSystem) -> None:
        super().__init__(system.n - 1)
        self.system = system
        self.name = f"{system.name}_cm"
        basis = torch.eye(system.n, dtype=torch.float64)
        basis[:, 0] = 1.0
        orthogonal, _ = torch.linalg.qr(basis)
        self._basis = (orthogonal * orthogonal[0, 0].sign()).T  # first row (1, ..., 1)/√N

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Points ``(B, 2(N−1))`` of this frame → lattice points ``(B, 2N)`` at rest at the origin."""
        q, p = split(x)
        basis = self._basis.to(x)
        zero = q.new_zeros(q.shape[0], 1)
        return join(torch.cat([zero, q], -1) @ basis, torch.cat([zero, p], -1) @ basis)

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        """Lattice points ``(B, 2N)`` → this frame (the centre-of-mass pair is dropped)."""
        q, p = split(x)
        basis = self._basis.to(x)
        return join((q @ basis.T)[:, 1:], (p @ basis.T)[:, 1:])

    def _hamiltonian(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        with validation(False):
            return self.system.hamiltonian(self.embed(join(q, p)))

    def _vector_field(self, x: torch.Tensor) -> torch.Tensor:
        # O is orthogonal, so the frame's field is the lattice's field rotated back (closed form when the
        # lattice's is); its centre-of-mass pair, (P/√N, 0) at P = 0, is dropped
        with validation(False):
            return self.reduce(self.system.vector_field(self.embed(x)))

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.reduce(self.system.sample_initial(num, generator=generator))

    def _params(self) -> str:
        return f"system={self.system!r}"
