"""The Toda lattice, integrable through Flaschka's Lax pair."""

from __future__ import annotations

import torch

from canonflow.phase_space import join, split
from canonflow.systems.base import HamiltonianSystem, Quantity, normal_draws
from canonflow.validation import check_positive_int

__all__ = ["Toda"]


class Toda(HamiltonianSystem):
    """The Toda lattice of ``N`` unit masses with exponential nearest-neighbour interaction (``n = N``).

    ``H(q, p) = Σ_{i=1}^N p_i²/2 + Σ_i exp(q_i − q_{i+1})``

    where the second sum runs over ``i = 1..N`` with ``q_{N+1} = q_1`` for the periodic lattice
    (``periodic=True``, ``N ≥ 3``) and over ``i = 1..N−1`` for the open chain (``N ≥ 2``).

    Conserved quantities: ``"energy"``, the total momentum ``"momentum" = Σ p_i`` and the traces
    ``"lax_trace_k" = tr(L^k)``, ``k = 1..N``, of Flaschka's symmetric Lax matrix ``L`` with diagonal
    ``b_i = −p_i/2`` and off-diagonal entries ``L_{i,i+1} = L_{i+1,i} = a_i = ½ exp((q_i − q_{i+1})/2)``
    (periodic: also ``L_{N,1} = L_{1,N} = a_N``). Then ``tr L = −½ Σ p_i`` and ``tr L² = H/2``; the
    eigenvalues of ``L`` are constants of motion (``L̇ = [B, L]``).

    ``sample_initial`` draws ``q_i, p_i ~ N(0, 0.5²)`` independently.
    """

    name = "toda"
    separable = True

    def __init__(self, N: int = 3, periodic: bool = True) -> None:
        check_positive_int(N, "N", "Toda")
        if periodic and N < 3:
            raise ValueError(f"Toda: the periodic lattice needs N >= 3 (its Lax matrix degenerates), got N={N}")
        if not periodic and N < 2:
            raise ValueError(f"Toda: the open chain needs N >= 2, got N={N}")
        super().__init__(N)
        self.N = N
        self.periodic = bool(periodic)

    def _bond_differences(self, q: torch.Tensor) -> torch.Tensor:
        if self.periodic:
            return q - torch.roll(q, -1, dims=-1)
        return q[:, :-1] - q[:, 1:]

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        return torch.exp(self._bond_differences(q)).sum(-1)

    def _vector_field(self, x: torch.Tensor) -> torch.Tensor:
        # (q̇, ṗ) = (p, −∂V/∂q) with ∂V/∂q_i = e^{q_i − q_{i+1}} − e^{q_{i−1} − q_i}: bond i pushes particle i and
        # pulls particle i + 1 (cyclically when periodic)
        q, p = split(x)
        bonds = torch.exp(self._bond_differences(q))
        if self.periodic:
            force = torch.roll(bonds, 1, dims=-1) - bonds
        else:
            zero = bonds.new_zeros(bonds.shape[0], 1)
            force = torch.cat([zero, bonds], -1) - torch.cat([bonds, zero], -1)
        return join(p, force)

    def lax_matrix(self, x: torch.Tensor) -> torch.Tensor:
        """Flaschka's symmetric Lax matrix ``L(x)`` (see the class docstring), shape ``(B, N, N)``."""
        self._check_x(x, "lax_matrix")
        q, p = split(x)
        a = 0.5 * torch.exp(0.5 * self._bond_differences(q))
        lax = torch.diag_embed(-0.5 * p)
        off = torch.diag_embed(a[:, : self.N - 1], offset=1)
        lax = lax + off + off.transpose(-1, -2)
        if self.periodic:
            corner = torch.zeros_like(lax)
            corner[:, 0, -1] = a[:, -1]
            corner[:, -1, 0] = a[:, -1]
            lax = lax + corner
        return lax

    def lax_traces(self, x: torch.Tensor) -> torch.Tensor:
        """``tr(L^k)`` for ``k = 1..N`` (all conserved), shape ``(B, N)``."""
        lax = self.lax_matrix(x)
        power = lax
        traces = [torch.diagonal(power, dim1=-2, dim2=-1).sum(-1)]
        for _ in range(self.N - 1):
            power = power @ lax
            traces.append(torch.diagonal(power, dim1=-2, dim2=-1).sum(-1))
        return torch.stack(traces, dim=-1)

    def _extra_conserved(self) -> dict[str, Quantity]:
        out: dict[str, Quantity] = {"momentum": lambda x: split(x)[1].sum(-1)}
        for k in range(self.N):
            out[f"lax_trace_{k + 1}"] = lambda x, k=k: self.lax_traces(x)[:, k]
        return out

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        return join(normal_draws((num, self.N), 0.5, generator), normal_draws((num, self.N), 0.5, generator))

    def _params(self) -> str:
        return f"N={self.N}, periodic={self.periodic}"
