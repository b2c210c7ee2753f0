"""A linear chain of coupled oscillators with fixed ends: exact normal modes and free energy."""

from __future__ import annotations

import math

import torch

from canonflow.phase_space import join, split
from canonflow.systems.base import HamiltonianSystem, Quantity
from canonflow.validation import check_positive_int, check_real

__all__ = ["HarmonicChain"]


class HarmonicChain(HamiltonianSystem):
    """``n`` unit masses joined by springs of stiffness ``κ``, both ends tied to fixed walls.

    ``H(q, p) = ½ pᵀp + (κ/2) qᵀ L q``,  ``L = tridiag(−1, 2, −1)`` (``n × n``), i.e.
    ``V(q) = (κ/2) [q_1² + Σ_{i=1}^{n−1} (q_{i+1} − q_i)² + q_n²]``.

    Exact results:

    * normal modes ``v_k(j) = √(2/(n+1)) sin(jkπ/(n+1))`` (:meth:`normal_modes`) with angular frequencies
      ``ω_k = 2√κ sin(kπ/(2(n+1)))``, ``k = 1..n`` (:meth:`normal_mode_frequencies`);
    * the mode energies ``E_k = (P_k² + ω_k² Q_k²)/2`` with ``Q = Vᵀq``, ``P = Vᵀp`` are conserved
      (``"mode_energy_1" .. "mode_energy_n"``);
    * the free energy ``F(β) = −(1/β) ln Z``, ``Z = ∫ e^{−βH} dq dp = Π_k 2π/(β ω_k)``
      (:meth:`free_energy`; ``F(1) = Σ ln ω_k − n ln 2π ≈ −57.0638`` for ``n = 32``, ``κ = 1``);
    * exact Boltzmann samples from ``e^{−βH}/Z`` (:meth:`sample_boltzmann`).

    ``sample_initial`` draws Boltzmann samples at ``β = 1``.
    """

    name = "harmonic_chain"
    separable = True

    def __init__(self, n: int = 32, kappa: float = 1.0) -> None:
        super().__init__(check_positive_int(n, "n", "HarmonicChain"))
        self.kappa = check_real(kappa, "kappa", "HarmonicChain", positive=True)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(q, (1, 1))
        diff = padded[:, 1:] - padded[:, :-1]
        return 0.5 * self.kappa * (diff * diff).sum(-1)

    def stiffness_matrix(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``κ L`` with ``L = tridiag(−1, 2, −1)``, shape ``(n, n)``: ``V(q) = ½ qᵀ (κL) q``."""
        eye = torch.eye(self.n, dtype=dtype)
        off = torch.diag(torch.ones(self.n - 1, dtype=dtype), 1)
        return self.kappa * (2.0 * eye - off - off.T)

    def normal_mode_frequencies(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``ω_k = 2√κ sin(kπ/(2(n+1)))`` for ``k = 1..n``, shape ``(n,)``."""
        k = torch.arange(1, self.n + 1, dtype=dtype)
        return 2.0 * math.sqrt(self.kappa) * torch.sin(k * math.pi / (2 * (self.n + 1)))

    def normal_modes(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The orthonormal sine modes ``V[j−1, k−1] = √(2/(n+1)) sin(jkπ/(n+1))``, shape ``(n, n)``.

        Column ``k − 1`` is mode ``k`` (frequency ``ω_k``); ``V`` is symmetric and orthogonal and
        ``Vᵀ(κL)V = diag(ω_k²)``.
        """
        j = torch.arange(1, self.n + 1, dtype=dtype)
        return math.sqrt(2.0 / (self.n + 1)) * torch.sin(torch.outer(j, j) * math.pi / (self.n + 1))

    def mode_energies(self, x: torch.Tensor) -> torch.Tensor:
        """Normal-mode energies ``E_k = (P_k² + ω_k² Q_k²)/2``, ``Q = Vᵀq``, ``P = Vᵀp``, shape ``(B, n)``."""
        self._check_x(x, "mode_energies")
        q, p = split(x)
        v = self.normal_modes(x.dtype).to(x.device)
        w = self.normal_mode_frequencies(x.dtype).to(x.device)
        big_q, big_p = q @ v, p @ v
        return 0.5 * (big_p**2 + (w * big_q) ** 2)

    def free_energy(self, beta: float = 1.0) -> float:
        """``F(β) = −(1/β) ln Z = (1/β) Σ_k ln(β ω_k / 2π)``; at ``β = 1``: ``Σ ln ω_k − n ln 2π``."""
        beta = check_real(beta, "beta", f"{self._who}.free_energy", positive=True)
        w = self.normal_mode_frequencies(torch.float64)
        return float(torch.log(beta * w / (2 * math.pi)).sum()) / beta

    def sample_boltzmann(
        self,
        num: int,
        beta: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> torch.Tensor:
        """Exact samples from ``e^{−βH}/Z``, shape ``(num, 2n)``.

        ``p ~ N(0, I/β)`` and ``q = V Q`` with independent ``Q_k ~ N(0, 1/(β ω_k²))``.
        """
        who = f"{self._who}.sample_boltzmann"
        check_positive_int(num, "num", who)
        beta = check_real(beta, "beta", who, positive=True)
        w = self.normal_mode_frequencies(torch.float64)
        z = torch.randn((num, 2, self.n), generator=generator, dtype=torch.float64) / math.sqrt(beta)
        q = (z[:, 0] / w) @ self.normal_modes(torch.float64).T
        return join(q, z[:, 1]).to(dtype)

    def _extra_conserved(self) -> dict[str, Quantity]:
        return {f"mode_energy_{k + 1}": (lambda x, k=k: self.mode_energies(x)[:, k]) for k in range(self.n)}

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.sample_boltzmann(num, 1.0, generator)

    def _params(self) -> str:
        return f"n={self.n}, kappa={self.kappa}"
