"""The periodic Fermi–Pasta–Ulam–Tsingou chain and its linear normal modes."""

from __future__ import annotations

import math

import torch

from canonflow.phase_space import join, split
from canonflow.systems.base import HamiltonianSystem, Quantity, normal_draws
from canonflow.validation import check_positive_int, check_real

__all__ = ["FPUT"]


class FPUT(HamiltonianSystem):
    """The periodic Fermi–Pasta–Ulam–Tsingou (α/β) chain of ``N`` unit masses (``n = N``).

    ``H(q, p) = Σ_{i=1}^N [½p_i² + ½r_i² + (α/3) r_i³ + (β/4) r_i⁴]``,  ``r_i = q_{i+1} − q_i``, ``q_{N+1} = q_1``.

    Linear normal modes (:meth:`normal_modes`): the orthonormal Hartley basis
    ``h_k(j) = (cos(2πkj/N) + sin(2πkj/N))/√N``, ``j, k = 0..N−1``, diagonalizes the periodic stiffness matrix
    with angular frequencies ``ω_k = 2 sin(πk/N)`` (:meth:`normal_mode_frequencies`; ``k = 0`` is the
    centre-of-mass mode). With ``Q = Hq``, ``P = Hp`` the mode energies are ``E_k = (P_k² + ω_k² Q_k²)/2``
    (:meth:`normal_mode_energies`) and ``Σ_k E_k`` is the harmonic part of ``H``.

    Conserved: ``"energy"``, the total momentum ``"momentum" = Σ p_i``; for the linear chain
    (``α = β = 0``) also every ``"mode_energy_k"``, ``k = 0..N−1``.

    ``sample_initial`` draws ``q_i, p_i ~ N(0, 0.3²)`` independently (small amplitudes; for ``α ≠ 0`` the
    cubic potential is unbounded below, so large amplitudes can escape).
    """

    name = "fput"
    separable = True

    def __init__(self, N: int = 16, alpha: float = 0.0, beta: float = 0.0) -> None:
        check_positive_int(N, "N", "FPUT")
        if N < 2:
            raise ValueError(f"FPUT: expected N >= 2 masses, got N={N}")
        super().__init__(N)
        self.N = N
        self.alpha = check_real(alpha, "alpha", "FPUT")
        self.beta = check_real(beta, "beta", "FPUT")

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        r = torch.roll(q, -1, dims=-1) - q
        r2 = r * r
        return (0.5 * r2 + (self.alpha / 3.0) * r2 * r + (self.beta / 4.0) * r2 * r2).sum(-1)

    def normal_mode_frequencies(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``ω_k = 2 sin(πk/N)`` for ``k = 0..N−1``, shape ``(N,)``."""
        k = torch.arange(self.N, dtype=dtype)
        return 2.0 * torch.sin(math.pi * k / self.N)

    def normal_modes(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The Hartley matrix ``H[k, j] = (cos(2πkj/N) + sin(2πkj/N))/√N``, shape ``(N, N)``.

        Row (equivalently column) ``k`` is mode ``k`` with frequency ``ω_k``; ``H`` is symmetric and orthogonal.
        """
        k = torch.arange(self.N, dtype=dtype)
        angle = 2 * math.pi * torch.outer(k, k) / self.N
        return (torch.cos(angle) + torch.sin(angle)) / math.sqrt(self.N)

    def normal_mode_energies(self, x: torch.Tensor) -> torch.Tensor:
        """Linear mode energies ``E_k = (P_k² + ω_k² Q_k²)/2``, ``Q = Hq``, ``P = Hp``, shape ``(B, N)``."""
        self._check_x(x, "normal_mode_energies")
        q, p = split(x)
        h = self.normal_modes(x.dtype).to(x.device)
        w = self.normal_mode_frequencies(x.dtype).to(x.device)
        big_q, big_p = q @ h, p @ h
        return 0.5 * (big_p**2 + (w * big_q) ** 2)

    def _extra_conserved(self) -> dict[str, Quantity]:
        out: dict[str, Quantity] = {"momentum": lambda x: split(x)[1].sum(-1)}
        if self.alpha == 0.0 and self.beta == 0.0:
            for k in range(self.N):
                out[f"mode_energy_{k}"] = lambda x, k=k: self.normal_mode_energies(x)[:, k]
        return out

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        return join(normal_draws((num, self.N), 0.3, generator), normal_draws((num, self.N), 0.3, generator))

    def _params(self) -> str:
        return f"N={self.N}, alpha={self.alpha}, beta={self.beta}"
