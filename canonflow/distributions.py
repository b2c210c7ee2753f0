"""Base distributions on phase space, as nflows ``Distribution`` objects."""

from __future__ import annotations

import math

import torch
from nflows.distributions import Distribution

from canonflow.validation import check_phase_space, check_positive_int

__all__ = ["PhaseSpaceNormal", "DiagonalPhaseSpaceNormal"]


class PhaseSpaceNormal(Distribution):
    """The standard normal ``N(0, I)`` on ``ℝ²ⁿ``: ``log p(x) = -|x|²/2 - n ln 2π`` for ``x`` of shape ``(B, 2n)``.

    Unlike nflows' ``StandardNormal`` (which always samples float32), samples and log-densities follow the
    module's dtype and device, so ``Flow(transform, PhaseSpaceNormal(n)).double()`` works end to end.
    Unconditional: ``context`` must be ``None``.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = check_positive_int(n, "n", type(self).__name__)
        self.register_buffer("_anchor", torch.zeros(()))

    def _no_context(self, context: torch.Tensor | None) -> None:
        if context is not None:
            raise ValueError(f"{type(self).__name__}: this distribution is unconditional; context must be None")

    def _log_prob(self, inputs: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        check_phase_space(inputs, self.n, f"{type(self).__name__}.log_prob", self._anchor)
        return -0.5 * inputs.pow(2).sum(-1) - self.n * math.log(2 * math.pi)

    def _sample(self, num_samples: int, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return torch.randn(num_samples, 2 * self.n, dtype=self._anchor.dtype, device=self._anchor.device)

    def _mean(self, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return self._anchor.new_zeros(2 * self.n)


class DiagonalPhaseSpaceNormal(Distribution):
    """``N(μ, diag σ²)`` on ``ℝ²ⁿ`` with learnable ``μ`` and ``log σ`` (start at ``0``): a base distribution
    that can carry a target's scale and normalization, which canonical layers (``log|det J| = 0``) cannot.

    ``log p(x) = −Σ_i [(x_i − μ_i)²/(2σ_i²) + log σ_i] − n ln 2π`` for ``x`` of shape ``(B, 2n)``.
    ``rsample(num, generator)`` draws ``μ + σ ⊙ ε`` reparameterized (differentiable in ``μ, σ``).
    Unconditional: ``context`` must be ``None``. (The sampling module's base; see also the oscillator base
    planned in ``canonflow.distributions`` on the density branch.)
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = check_positive_int(n, "n", type(self).__name__)
        self.loc = torch.nn.Parameter(torch.zeros(2 * self.n))
        self.log_scale = torch.nn.Parameter(torch.zeros(2 * self.n))

    def _no_context(self, context: torch.Tensor | None) -> None:
        if context is not None:
            raise ValueError(f"{type(self).__name__}: this distribution is unconditional; context must be None")

    def _log_prob(self, inputs: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        check_phase_space(inputs, self.n, f"{type(self).__name__}.log_prob", self.loc)
        z = (inputs - self.loc) * torch.exp(-self.log_scale)
        return -0.5 * z.pow(2).sum(-1) - self.log_scale.sum() - self.n * math.log(2 * math.pi)

    def rsample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num_samples`` reparameterized draws ``μ + σ ⊙ ε``, ``ε ~ N(0, I)``; shape ``(num_samples, 2n)``."""
        check_positive_int(num_samples, "num_samples", f"{type(self).__name__}.rsample")
        eps = torch.randn(num_samples, 2 * self.n, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + torch.exp(self.log_scale) * eps

    def _sample(self, num_samples: int, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return self.rsample(num_samples).detach()

    def _mean(self, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return self.loc.detach().clone()
