"""A non-separable quadratic Hamiltonian with a ``q p`` coupling."""

from __future__ import annotations

import math

import torch

from canonflow.phase_space import join
from canonflow.systems.base import HamiltonianSystem, normal_draws
from canonflow.validation import check_real

__all__ = ["CoupledOscillator"]


class CoupledOscillator(HamiltonianSystem):
    """A non-separable oscillator in one degree of freedom.

    ``H(q, p) = ½(q² + p²) + α q p``,  ``|α| < 1``

    ``H = ½ xᵀ M x`` with ``M = [[1, α], [α, 1]]`` positive definite, so orbits are ellipses travelled
    with the exact angular frequency ``ω = √det M = √(1 − α²)`` (:meth:`frequencies`); the flow is
    ``x(t) = exp(t Ω M) x``. The energy is the only conserved quantity. Since ``H`` is not ``T(p) + V(q)``,
    :meth:`kinetic` and :meth:`potential` raise ``NotImplementedError``.

    ``sample_initial`` draws ``q, p ~ N(0, 1)`` independently.
    """

    name = "coupled_oscillator"
    separable = False

    def __init__(self, alpha: float = 0.5) -> None:
        super().__init__(1)
        self.alpha = check_real(alpha, "alpha", "CoupledOscillator")
        if abs(self.alpha) >= 1.0:
            raise ValueError(
                f"CoupledOscillator: expected |alpha| < 1 (bounded, positive-definite H), got {self.alpha}"
            )

    def _hamiltonian(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        q, p = q[:, 0], p[:, 0]
        return 0.5 * (q * q + p * p) + self.alpha * q * p

    def frequencies(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """The angular frequency ``√(1 − α²)``: shape ``(B,)`` for a batch ``x``, a float64 scalar without one."""
        w = math.sqrt(1.0 - self.alpha**2)
        if x is None:
            return torch.tensor(w, dtype=torch.float64)
        self._check_x(x, "frequencies")
        return torch.full((x.shape[0],), w, dtype=x.dtype, device=x.device)

    def exact_flow(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """The exact time-``t`` flow ``exp(t Ω M) x``, shape ``(B, 2)``.

        With ``A = Ω M`` and ``A² = −ω² I``: ``exp(tA) = cos(ωt) I + sin(ωt)/ω A``.
        """
        self._check_x(x, "exact_flow")
        w = math.sqrt(1.0 - self.alpha**2)
        q, p = x[:, :1], x[:, 1:]
        # A x = (∂H/∂p, −∂H/∂q) = (p + α q, −(q + α p))
        aq, ap = p + self.alpha * q, -(q + self.alpha * p)
        c, s = math.cos(w * t), math.sin(w * t) / w
        return join(c * q + s * aq, c * p + s * ap)

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        return normal_draws((num, 2), 1.0, generator)

    def _params(self) -> str:
        return f"alpha={self.alpha}"
