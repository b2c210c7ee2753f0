"""Zero-centering: the canonical part of batch normalization (a shift)."""

from __future__ import annotations

import torch
from torch import nn

from canonflow.distributed import all_reduce_sum, world_size
from canonflow.transforms.base import SymplecticTransform

__all__ = ["ZeroCenter"]


class ZeroCenter(SymplecticTransform):
    """``(q, p) -> (q - μ_q + α, p - μ_p + β)``; shapes ``(B, 2n) -> (B, 2n)``; ``forward`` is data -> latent.

    In training mode ``μ`` is the batch mean, and the running mean (a buffer, saved with the state dict)
    is updated as in ``torch.nn.BatchNorm1d``: ``running <- (1 - momentum) running + momentum μ_batch``. In
    eval mode ``μ`` is the running mean, and the layer is an exact bijection. ``inverse`` always uses the
    running mean, ``(Q, P) -> (Q + μ_q - α, P + μ_p - β)``, so sampling works in either mode. Only the
    shift of batch norm is kept: a rescaling would not be canonical. Training mode needs ``B > 1``.

    In a distributed job (``torch.distributed`` initialized) the batch mean is taken over the global batch of
    all ranks, as ``torch.nn.SyncBatchNorm`` does, with gradients flowing through the all-reduce.
    """

    def __init__(self, n: int, momentum: float = 0.1) -> None:
        super().__init__(n)
        if not 0.0 < float(momentum) <= 1.0:
            raise ValueError(f"ZeroCenter: expected 0 < momentum <= 1, got {momentum}")
        self.momentum = float(momentum)
        self.shift = nn.Parameter(torch.zeros(2 * n))
        self.register_buffer("running_mean", torch.zeros(2 * n))

    def extra_repr(self) -> str:
        return f"n={self.n}, momentum={self.momentum}"

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x - self.running_mean + self.shift
        if x.shape[0] < 2:
            raise ValueError("ZeroCenter.forward: training mode needs a batch of at least 2 to estimate the mean")
        mean = self._batch_mean(x)
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
        return x - mean + self.shift

    @staticmethod
    def _batch_mean(x: torch.Tensor) -> torch.Tensor:
        if world_size() == 1:
            return x.mean(0)
        count = all_reduce_sum(torch.tensor([float(x.shape[0])], dtype=x.dtype, device=x.device))
        return all_reduce_sum(x.sum(0)) / count

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.running_mean - self.shift
