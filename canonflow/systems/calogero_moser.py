"""The rational Calogero–Moser system in a harmonic trap: integrable and isochronous."""

from __future__ import annotations

import math

import numpy
import torch

from canonflow.phase_space import join, split
from canonflow.systems.base import HamiltonianSystem, Quantity, normal_draws, uniform_draws
from canonflow.validation import check_positive_int, check_real

__all__ = ["CalogeroMoser"]


class CalogeroMoser(HamiltonianSystem):
    """``N`` unit-mass particles on a line with inverse-square repulsion in a harmonic trap (``n = N``).

    ``H(q, p) = ½ Σ_i (p_i² + ω² q_i²) + g² Σ_{i<j} 1/(q_i − q_j)²``  (defaults ``ω = g = 1``)

    Integrability: with the Hermitian Lax matrix ``L_{jj} = p_j``, ``L_{jk} = i g/(q_j − q_k)`` (``j ≠ k``) and
    ``Q = diag(q)``, the matrices ``L^± = L ± iωQ`` obey ``L̇^± = [M, L^±] ± iω L^±``, so
    ``𝓝 = L⁺L⁻`` (Hermitian, positive semi-definite) obeys ``𝓝̇ = [M, 𝓝]`` and the traces
    ``"lax_trace_k" = tr(𝓝^k)``, ``k = 1..N``, are conserved; ``tr 𝓝 = 2H``.

    The system is isochronous: ``q(t)`` are the eigenvalues of ``Q cos ωt + (L/ω) sin ωt``, so every orbit
    is periodic with period ``2π/ω`` (:meth:`period`). Particles never cross, so their order is preserved.

    ``sample_initial`` draws ordered, well separated particles ``q_i = (i − (N+1)/2) + u_i``,
    ``u_i ~ U(−0.2, 0.2)`` (gaps ≥ 0.6), and momenta ``p_i ~ N(0, 0.5²)``.
    """

    name = "calogero_moser"
    separable = True

    def __init__(self, N: int = 3, omega: float = 1.0, g: float = 1.0) -> None:
        check_positive_int(N, "N", "CalogeroMoser")
        if N < 2:
            raise ValueError(f"CalogeroMoser: expected N >= 2 particles, got N={N}")
        super().__init__(N)
        self.N = N
        self.omega = check_real(omega, "omega", "CalogeroMoser", positive=True)
        self.g = check_real(g, "g", "CalogeroMoser", positive=True)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        i, j = torch.triu_indices(self.N, self.N, offset=1)
        diff = q[:, i] - q[:, j]
        return 0.5 * self.omega**2 * (q * q).sum(-1) + self.g**2 * (1.0 / (diff * diff)).sum(-1)

    def lax_matrices(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L⁺, L⁻) = (L + iωQ, L − iωQ)``, complex tensors of shape ``(B, N, N)`` (``L⁻ = (L⁺)^†``)."""
        self._check_x(x, "lax_matrices")
        q, p = split(x)
        diff = q.unsqueeze(-1) - q.unsqueeze(-2)
        eye = torch.eye(self.N, dtype=q.dtype, device=q.device)
        off = self.g * (1.0 - eye) / (diff + eye)  # g/(q_j − q_k) off the diagonal, 0 on it
        lax = torch.complex(torch.diag_embed(p), off)
        conf = torch.complex(torch.zeros_like(off), torch.diag_embed(self.omega * q))
        return lax + conf, lax - conf

    def lax_traces(self, x: torch.Tensor) -> torch.Tensor:
        """``tr(𝓝^k)`` for ``k = 1..N`` with ``𝓝 = L⁺L⁻`` (all conserved; real), shape ``(B, N)``."""
        plus, minus = self.lax_matrices(x)
        big_n = plus @ minus
        power = big_n
        traces = [torch.diagonal(power, dim1=-2, dim2=-1).sum(-1).real]
        for _ in range(self.N - 1):
            power = power @ big_n
            traces.append(torch.diagonal(power, dim1=-2, dim2=-1).sum(-1).real)
        return torch.stack(traces, dim=-1)

    def actions(self, x: torch.Tensor) -> torch.Tensor:
        """The exact actions ``I (B, N)`` of the chart of :meth:`action_hamiltonian`, from the spectrum of ``𝓝``.

        With ``ν_1 < … < ν_N`` the eigenvalues of ``𝓝 = L⁺L⁻`` (conserved) and ``J_j = ν_j/(2ω) − g (j − 1)``:

            ``I_N = J_1``,    ``I_k = J_{N−k+1} − J_{N−k}``  (``k < N``),

        so ``Σ_k k I_k = Σ_j J_j = (H − E₀)/ω`` (``tr 𝓝 = 2H``). Each ``ν_j/(2ω)`` generates a ``2π``-periodic
        flow (the matrix-model flow ``Z → e^{iθ P_j} Z`` with ``P_j`` the ``j``-th spectral projector of ``ZZ^†``),
        so the ``I_k`` are the actions of the torus action continuing the normal modes of the equilibrium, where
        ``ν = 2ωg (0, 1, …, N − 1)`` and ``I = 0``; ``I_k ≥ 0``, and ``I_k`` belongs to the frequency ``kω``.
        """
        self._check_x(x, "actions")
        plus, minus = self.lax_matrices(x)
        return self.actions_of_spectrum(torch.linalg.eigvalsh(plus @ minus))

    def actions_of_spectrum(self, spectrum: torch.Tensor) -> torch.Tensor:
        """The actions ``I (B, N)`` of :meth:`actions` from the ascending eigenvalues ``ν (B, N)`` of ``𝓝``."""
        offsets = self.g * torch.arange(self.N, dtype=spectrum.dtype, device=spectrum.device)
        ladder = spectrum / (2 * self.omega) - offsets
        return torch.cat([torch.diff(ladder, dim=-1).flip(-1), ladder[:, :1]], dim=-1)

    def spectrum_of_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """The ascending eigenvalues ``ν (B, N)`` of ``𝓝`` on the torus with actions ``I (B, N)`` (inverse of
        :meth:`actions_of_spectrum`)."""
        offsets = self.g * torch.arange(self.N, dtype=actions.dtype, device=actions.device)
        return 2 * self.omega * (torch.cumsum(actions.flip(-1), dim=-1) + offsets)

    def action_hamiltonian(self, actions: torch.Tensor) -> torch.Tensor:
        """``K(I) = E₀ + ω Σ_k k I_k`` for actions ``(B, N)`` (``E₀ = H`` at :meth:`equilibrium`), shape ``(B,)``.

        The Hamiltonian in the action-angle coordinates that continue the normal modes of the equilibrium: the
        system is isochronous with normal-mode frequencies ``kω`` (``k = 1..N``), so ``∂K/∂I_k = kω`` on every
        torus of the region connected to the equilibrium, where ``K = E₀`` at ``I = 0``; ``E₀ = ω g N(N−1)/2``.
        For :class:`canonflow.action_angle.NormalFormLoss`.
        """
        self._check_half(actions, "action_hamiltonian", "actions")
        weights = torch.arange(1, self.N + 1, dtype=actions.dtype, device=actions.device)
        return self.ground_energy() + self.omega * actions @ weights

    def ground_energy(self) -> float:
        """``E₀ = ω g N(N−1)/2``, the minimum of ``H`` (at :meth:`equilibrium`)."""
        return self.omega * self.g * self.N * (self.N - 1) / 2

    def period(self) -> float:
        """The common period ``2π/ω`` of every orbit."""
        return 2 * math.pi / self.omega

    def fundamental_frequency(self, x: torch.Tensor) -> torch.Tensor:
        """The fundamental frequency ``ω`` shared by every orbit (the system is isochronous), shape ``(B,)`` for
        states ``x (B, 2N)``: the exact reference of :func:`canonflow.action_angle.frequency_error`."""
        return torch.full((len(x),), self.omega, dtype=x.dtype)

    def equilibrium(self) -> torch.Tensor:
        """The stable equilibrium ``(q*, 0)`` of shape ``(2N,)`` (float64): ``q*_i = √(g/ω) x_i`` with ``x_i`` the
        zeros of the Hermite polynomial ``H_N`` in increasing order (Calogero), the minimum of ``H``."""
        zeros = numpy.sort(numpy.polynomial.hermite.hermroots([0.0] * self.N + [1.0]).real)
        q = torch.as_tensor(zeros, dtype=torch.float64) * math.sqrt(self.g / self.omega)
        return join(q, torch.zeros_like(q))

    def _extra_conserved(self) -> dict[str, Quantity]:
        return {f"lax_trace_{k + 1}": (lambda x, k=k: self.lax_traces(x)[:, k]) for k in range(self.N)}

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        base = torch.arange(1, self.N + 1, dtype=torch.float64) - 0.5 * (self.N + 1)
        q = base + uniform_draws((num, self.N), -0.2, 0.2, generator)
        return join(q, normal_draws((num, self.N), 0.5, generator))

    def _params(self) -> str:
        return f"N={self.N}, omega={self.omega}, g={self.g}"
