"""Uncoupled harmonic oscillators: the exactly solvable reference system."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from canonflow.phase_space import join, split
from canonflow.systems.base import HamiltonianSystem, Quantity, normal_draws
from canonflow.validation import check_positive_int, check_real

__all__ = ["HarmonicOscillator"]


class HarmonicOscillator(HamiltonianSystem):
    """``n`` uncoupled harmonic oscillators of unit mass.

    ``H(q, p) = Σ_k (p_k² + ω_k² q_k²) / 2``.

    Each oscillator's energy ``E_k = (p_k² + ω_k² q_k²)/2`` and action ``I_k = E_k / ω_k`` are conserved
    (``"action_1" .. "action_n"``); the angular frequencies are exactly ``ω_k`` and the flow is the rotation
    ``q_k(t) = q_k cos ω_k t + (p_k/ω_k) sin ω_k t``, ``p_k(t) = p_k cos ω_k t − ω_k q_k sin ω_k t``.

    Args:
        n: number of oscillators.
        omega: a positive angular frequency shared by all, or a length-``n`` sequence of them.

    ``sample_initial`` draws ``q_k ~ N(0, 1/ω_k²)`` and ``p_k ~ N(0, 1)`` (the Boltzmann law at ``β = 1``).
    """

    name = "oscillator"
    separable = True

    def __init__(self, n: int = 1, omega: float | Sequence[float] = 1.0) -> None:
        who = "HarmonicOscillator"
        n = check_positive_int(n, "n", who)
        if isinstance(omega, (int, float)) and not isinstance(omega, bool):
            omegas = [check_real(omega, "omega", who, positive=True)] * n
        else:
            omegas = [check_real(w, "omega[k]", who, positive=True) for w in omega]
            if len(omegas) != n:
                raise ValueError(f"{who}: expected omega to be a scalar or have length n={n}, got {len(omegas)}")
        super().__init__(n)
        self.omega: tuple[float, ...] = tuple(omegas)

    def _omega(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.omega, dtype=like.dtype, device=like.device)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self._omega(q) ** 2 * q * q).sum(-1)

    def action_hamiltonian(self, actions: torch.Tensor) -> torch.Tensor:
        """``K(I) = Σ_k ω_k I_k``, the Hamiltonian in action-angle coordinates, for actions ``(B, n)``; shape ``(B,)``.

        For :class:`canonflow.action_angle.NormalFormLoss`.
        """
        self._check_half(actions, "action_hamiltonian", "actions")
        return actions @ self._omega(actions)

    def mode_energies(self, x: torch.Tensor) -> torch.Tensor:
        """Per-oscillator energies ``E_k = (p_k² + ω_k² q_k²)/2``, shape ``(B, n)``."""
        self._check_x(x, "mode_energies")
        q, p = split(x)
        return 0.5 * (p * p + self._omega(q) ** 2 * q * q)

    def actions(self, x: torch.Tensor) -> torch.Tensor:
        """Actions ``I_k = E_k / ω_k`` (conserved), shape ``(B, n)``."""
        self._check_x(x, "actions")
        return self.mode_energies(x) / self._omega(x)

    def frequencies(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """Angular frequencies ``ω_k``: shape ``(B, n)`` for a batch ``x``, or ``(n,)`` float64 without one."""
        if x is None:
            return torch.tensor(self.omega, dtype=torch.float64)
        self._check_x(x, "frequencies")
        return self._omega(x).expand(x.shape[0], self.n)

    def exact_flow(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """The exact time-``t`` flow ``φ_t(x)`` (a rotation in each ``(q_k, ω_k p_k)`` plane), shape ``(B, 2n)``.

        ``t`` is a scalar or a ``(B,)`` tensor of times.
        """
        self._check_x(x, "exact_flow")
        q, p = split(x)
        w = self._omega(x)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 1:
            t = t.unsqueeze(-1)
        c, s = torch.cos(w * t), torch.sin(w * t)
        return join(q * c + p / w * s, p * c - w * q * s)

    def free_energy(self, beta: float = 1.0) -> float:
        """``F = −(1/β) ln Z`` with ``Z = ∫ e^{−βH} dq dp = Π_k 2π / (β ω_k)``."""
        beta = check_real(beta, "beta", f"{self._who}.free_energy", positive=True)
        log_z = sum(math.log(2 * math.pi / (beta * w)) for w in self.omega)
        return -log_z / beta

    def _extra_conserved(self) -> dict[str, Quantity]:
        return {f"action_{k + 1}": (lambda x, k=k: self.actions(x)[:, k]) for k in range(self.n)}

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        w = torch.tensor(self.omega, dtype=torch.float64)
        q = normal_draws((num, self.n), 1.0, generator) / w
        p = normal_draws((num, self.n), 1.0, generator)
        return join(q, p)

    def _params(self) -> str:
        omega = self.omega[0] if len(set(self.omega)) == 1 else list(self.omega)
        return f"n={self.n}, omega={omega}"
