"""Constrained parameters: bijections from the unconstrained space the samplers run on, and summaries.

A model is written in its natural parameters ``θ`` (a scale ``σ > 0``, a probability in ``(0, 1)``, a simplex) with
a log density ``log p(θ)``. Each parameter is the image ``θ = f(y)`` of unconstrained coordinates ``y``, and the
samplers target the pulled-back density on ``ℝ^d``,

    ``U(y) = −log p(f(y)) − log|det ∂f/∂y|``,

whose draws map to exact draws of ``p(θ)`` (Stan's transforms):

========================  ===============================  ==============================================
bijector                  ``θ = f(y)``                      ``log|det ∂f/∂y|``
========================  ===============================  ==============================================
``Real()``                ``y``                             ``0``
``Positive()``            ``e^y``                           ``Σ y``
``Interval(a, b)``        ``a + (b − a) σ(y)``              ``Σ [log(b − a) + log σ(y) + log σ(−y)]``
``Simplex()``             stick-breaking, ``K − 1 -> K``    ``Σ_k [log z_k + log(1 − z_k) + log r_k]``
========================  ===============================  ==============================================

``Simplex`` (Stan's): ``z_k = σ(y_k − log(K − k))``, ``θ_k = r_k z_k`` with the remaining stick
``r_k = 1 − Σ_{j<k} θ_j``, and ``θ_K = r_K``; ``y = 0`` maps to the uniform simplex.

:class:`ParameterSpace` stacks named parameters of given shapes into one unconstrained vector ``(B, d)``, builds
``U`` from ``log p`` (:meth:`~ParameterSpace.potential`), maps draws back (:meth:`~ParameterSpace.constrain`) and
summarizes them on the constrained scale (:meth:`~ParameterSpace.summary`: mean, sd, quantiles and the Monte Carlo
standard error of each, ESS, R̂); ``SamplingResult.to_arviz(space=...)`` exports them by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from canonflow.sampling.diagnostics import ess_bulk, ess_tail, mcse_mean, mcse_quantile, mcse_sd, rhat

__all__ = ["Bijector", "Real", "Positive", "Interval", "Simplex", "ParameterSpace"]


class Bijector:
    """``θ = f(y)``: ``y`` ``(B, k)`` unconstrained -> ``θ`` ``(B, m)``; ``inverse``; ``log_abs_det_jacobian(y)``
    ``(B,)``. ``unconstrained_size(m)``: ``k`` for a constrained size ``m``."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """``θ = f(y)``."""
        raise NotImplementedError

    def inverse(self, theta: torch.Tensor) -> torch.Tensor:
        """``y = f⁻¹(θ)``."""
        raise NotImplementedError

    def log_abs_det_jacobian(self, y: torch.Tensor) -> torch.Tensor:
        """``log|det ∂f/∂y|`` per row, ``(B,)``."""
        raise NotImplementedError

    def unconstrained_size(self, size: int) -> int:
        """The number of unconstrained coordinates of a parameter with ``size`` constrained entries."""
        return size


class Real(Bijector):
    """The identity: an unconstrained parameter."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def inverse(self, theta: torch.Tensor) -> torch.Tensor:
        return theta

    def log_abs_det_jacobian(self, y: torch.Tensor) -> torch.Tensor:
        return y.new_zeros(y.shape[0])


class Positive(Bijector):
    """``θ = e^y > 0``."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.exp(y)

    def inverse(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.log(theta)

    def log_abs_det_jacobian(self, y: torch.Tensor) -> torch.Tensor:
        return y.sum(-1)


class Interval(Bijector):
    """``θ = a + (b − a) σ(y) ∈ (a, b)``, ``a < b`` finite."""

    def __init__(self, low: float, high: float) -> None:
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"Interval: expected finite low < high, got ({low}, {high})")
        self.low, self.high = float(low), float(high)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.low + (self.high - self.low) * torch.sigmoid(y)

    def inverse(self, theta: torch.Tensor) -> torch.Tensor:
        unit = (theta - self.low) / (self.high - self.low)
        return torch.log(unit) - torch.log1p(-unit)

    def log_abs_det_jacobian(self, y: torch.Tensor) -> torch.Tensor:
        return (math.log(self.high - self.low) + F.logsigmoid(y) + F.logsigmoid(-y)).sum(-1)


class Simplex(Bijector):
    """Stan's stick-breaking map of ``K − 1`` unconstrained coordinates to the ``K``-simplex (module docstring)."""

    def unconstrained_size(self, size: int) -> int:
        if size < 2:
            raise ValueError(f"Simplex: a simplex needs at least 2 entries, got {size}")
        return size - 1

    def _parts(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = y.shape[-1]
        offset = torch.log(torch.arange(k, 0, -1, dtype=y.dtype, device=y.device))
        z = torch.sigmoid(y - offset)
        # remaining stick before each break: r_1 = 1, r_{k+1} = r_k (1 − z_k)
        log_rest = torch.cumsum(F.logsigmoid(-(y - offset)), -1)
        log_before = torch.cat([y.new_zeros(y.shape[0], 1), log_rest[:, :-1]], -1)
        return z, log_before, log_rest

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        z, log_before, log_rest = self._parts(y)
        return torch.cat([z * log_before.exp(), log_rest[:, -1:].exp()], -1)

    def inverse(self, theta: torch.Tensor) -> torch.Tensor:
        k = theta.shape[-1] - 1
        rest = 1 - torch.cumsum(theta[:, :-1], -1)
        before = torch.cat([theta.new_ones(theta.shape[0], 1), rest[:, :-1]], -1)
        z = theta[:, :-1] / before
        offset = torch.log(torch.arange(k, 0, -1, dtype=theta.dtype, device=theta.device))
        return torch.log(z) - torch.log1p(-z) + offset

    def log_abs_det_jacobian(self, y: torch.Tensor) -> torch.Tensor:
        k = y.shape[-1]
        offset = torch.log(torch.arange(k, 0, -1, dtype=y.dtype, device=y.device))
        shifted = y - offset
        _, log_before, _ = self._parts(y)
        return (F.logsigmoid(shifted) + F.logsigmoid(-shifted) + log_before).sum(-1)


class ParameterSpace:
    """Named parameters ``{name: (bijector, shape)}`` (``shape``: a tuple, ``()`` for a scalar) stacked, in order,
    into one unconstrained vector ``y`` ``(B, d)``.

    >>> space = ParameterSpace({"mu": (Real(), ()), "tau": (Positive(), ()), "w": (Simplex(), (3,))})
    >>> space.dim
    4
    """

    def __init__(self, parameters: Mapping[str, tuple[Bijector, tuple[int, ...]]]) -> None:
        who = "ParameterSpace"
        if not parameters:
            raise ValueError(f"{who}: expected at least one parameter")
        self.blocks: list[tuple[str, Bijector, tuple[int, ...], int, int]] = []
        start = 0
        for name, spec in parameters.items():
            if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], Bijector)):
                raise TypeError(f"{who}: parameter {name!r} must be (Bijector, shape), got {spec!r}")
            bijector, shape = spec
            shape = tuple(int(s) for s in shape)
            size = bijector.unconstrained_size(int(np.prod(shape)) if shape else 1)
            self.blocks.append((name, bijector, shape, start, start + size))
            start += size
        self.dim = start

    @property
    def names(self) -> list[str]:
        """The parameter names, in order."""
        return [block[0] for block in self.blocks]

    def _check(self, y: torch.Tensor, who: str) -> None:
        if not isinstance(y, torch.Tensor) or y.dim() != 2 or y.shape[-1] != self.dim:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"ParameterSpace.{who}: expected y of shape (B, {self.dim}), got {shape}")

    def constrain(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """``y`` ``(B, d)`` -> ``{name: θ (B, *shape)}``. Draws ``(N, M, d)`` map to ``(N, M, *shape)``."""
        if y.dim() == 3:
            flat = self.constrain(y.reshape(-1, y.shape[-1]))
            return {name: value.reshape(*y.shape[:2], *value.shape[1:]) for name, value in flat.items()}
        self._check(y, "constrain")
        return {
            name: bijector.forward(y[:, a:b]).reshape(y.shape[0], *shape) for name, bijector, shape, a, b in self.blocks
        }

    def unconstrain(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``{name: θ (B, *shape)}`` -> ``y`` ``(B, d)``."""
        parts = []
        for name, bijector, _shape, _, _ in self.blocks:
            if name not in theta:
                raise ValueError(f"ParameterSpace.unconstrain: missing parameter {name!r}")
            value = theta[name]
            parts.append(bijector.inverse(value.reshape(value.shape[0], -1)))
        return torch.cat(parts, -1)

    def log_abs_det_jacobian(self, y: torch.Tensor) -> torch.Tensor:
        """``Σ`` over parameters of ``log|det ∂f/∂y|``, ``(B,)``."""
        self._check(y, "log_abs_det_jacobian")
        return sum(bijector.log_abs_det_jacobian(y[:, a:b]) for _, bijector, _, a, b in self.blocks)

    def potential(
        self, log_density: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``U(y) = −log p(f(y)) − log|det ∂f/∂y|`` for ``log_density({name: θ (B, *shape)}) -> (B,)``."""

        def potential(y: torch.Tensor) -> torch.Tensor:
            return -log_density(self.constrain(y)) - self.log_abs_det_jacobian(y)

        return potential

    def summary(
        self, samples: torch.Tensor, quantiles: tuple[float, ...] = (0.05, 0.5, 0.95)
    ) -> dict[str, dict[str, np.ndarray]]:
        """Per parameter (arrays of the parameter's ``shape``), on the constrained scale, for unconstrained draws
        ``samples`` ``(N, M, d)``: ``mean``, ``sd`` and their MCSE (``mcse_mean``, ``mcse_sd``), each quantile
        ``q5``, ``q50``, ... with ``mcse_q5``, ..., ``ess_bulk``, ``ess_tail`` and ``rhat``."""
        if samples.dim() != 3 or samples.shape[-1] != self.dim:
            raise ValueError(f"ParameterSpace.summary: expected samples (N, M, {self.dim}), got {tuple(samples.shape)}")
        out = {}
        for name, value in self.constrain(samples.detach()).items():
            draws = value.double().cpu().numpy().reshape(value.shape[0], value.shape[1], -1)
            shape = tuple(value.shape[2:])
            flat = draws.reshape(-1, draws.shape[-1])
            stats = {
                "mean": flat.mean(0),
                "sd": flat.std(0, ddof=1),
                "mcse_mean": np.asarray(mcse_mean(draws)),
                "mcse_sd": np.asarray(mcse_sd(draws)),
                "ess_bulk": np.asarray(ess_bulk(draws)),
                "ess_tail": np.asarray(ess_tail(draws)),
                "rhat": np.asarray(rhat(draws)),
            }
            for prob in quantiles:
                label = f"q{100 * prob:g}"
                stats[label] = np.quantile(flat, prob, axis=0)
                stats[f"mcse_{label}"] = np.asarray(mcse_quantile(draws, prob))
            out[name] = {key: np.asarray(v).reshape(shape) for key, v in stats.items()}
        return out
