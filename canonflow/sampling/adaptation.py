"""Stan's warm-up schedule and step-size adaptation: dual averaging per chain and the mass-matrix windows.

:class:`DualAveraging` adapts every chain's step size to its own mean acceptance statistic (Hoffman & Gelman 2014);
:func:`adaptation_windows` gives Stan's slow windows, doubling in length between an initial and a terminal fast
buffer, at whose ends the metric is re-estimated (:func:`canonflow.sampling.warmup.warmup_kernel`).
"""

from __future__ import annotations

import math

import torch

__all__ = ["DualAveraging", "adaptation_windows"]


class DualAveraging:
    """Nesterov dual averaging of ``log ε`` towards mean acceptance ``target`` (Hoffman & Gelman 2014, Alg. 5).

    ``H̄_t = (1 − 1/(t + t₀)) H̄_{t−1} + (δ − α_t)/(t + t₀)``, ``log ε_t = μ − √t H̄_t/γ``,
    ``log ε̄_t = t^{−κ} log ε_t + (1 − t^{−κ}) log ε̄_{t−1}``, ``μ = log 10ε₀``. ``step_size`` is a float (one
    adapter) or a tensor ``(B,)`` (one per chain, updated with acceptance statistics ``(B,)``); ``update`` and
    ``final_step_size`` return the same kind.
    """

    def __init__(
        self,
        step_size: float | torch.Tensor,
        target: float,
        gamma: float = 0.05,
        t0: float = 10.0,
        kappa: float = 0.75,
    ) -> None:
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.batched = isinstance(step_size, torch.Tensor)
        self.restart(step_size)

    def restart(self, step_size: float | torch.Tensor) -> None:
        """Restart from ``ε₀ = step_size`` (``μ = log 10ε₀``)."""
        eps = torch.as_tensor(step_size, dtype=torch.float64).clone()
        self.mu = torch.log(10 * eps)
        self.t = 0
        self.h_bar = torch.zeros_like(eps)
        self.log_step = torch.log(eps)
        self.log_step_bar = torch.zeros_like(eps)

    def _out(self, value: torch.Tensor) -> float | torch.Tensor:
        return value if self.batched else float(value)

    def update(self, accept_prob: float | torch.Tensor) -> float | torch.Tensor:
        """Record one acceptance statistic (per chain when batched); return the next step size ``ε_t``."""
        self.t += 1
        alpha = torch.as_tensor(accept_prob, dtype=torch.float64).cpu()
        weight = 1.0 / (self.t + self.t0)
        self.h_bar = (1 - weight) * self.h_bar + weight * (self.target - alpha)
        self.log_step = self.mu - math.sqrt(self.t) / self.gamma * self.h_bar
        eta = self.t**-self.kappa
        self.log_step_bar = eta * self.log_step + (1 - eta) * self.log_step_bar
        return self._out(self.log_step.exp())

    @property
    def final_step_size(self) -> float | torch.Tensor:
        """The averaged step size ``ε̄`` used after warm-up."""
        return self._out(self.log_step_bar.exp())

    def copy_chains(self, to: torch.Tensor, source: torch.Tensor) -> None:
        """Give chains ``to`` the adaptation state of chains ``source`` (index tensors of equal length)."""
        for name in ("mu", "h_bar", "log_step", "log_step_bar"):
            value = getattr(self, name)
            value[to] = value[source]


def adaptation_windows(warmup: int) -> list[tuple[int, int]]:
    """Slow (mass-matrix) windows ``[(start, end), ...]`` of a warm-up of ``warmup`` iterations.

    Initial buffer ``0.15·warmup``, final buffer ``max(0.1·warmup, min(50, warmup/4))``, windows of
    ``max(warmup/40, 5)`` iterations doubling in length; the last window stretches to the final buffer.
    Empty when ``warmup < 40``.
    """
    if warmup < 40:
        return []
    start, end_slow = int(0.15 * warmup), warmup - max(int(0.1 * warmup), min(50, warmup // 4))
    size = max(warmup // 40, 5)
    windows = []
    while start < end_slow:
        end = start + size
        if end + 2 * size > end_slow:
            end = end_slow
        windows.append((start, end))
        start, size = end, 2 * size
    return windows
