"""The digits data set: scikit-learn's 8×8 images (1797 of them, pixels 0..16), split and logit-preprocessed.

Pixels ``x`` are dequantized with uniform noise, ``v = x + u``, ``u ~ U[0, 1)`` (so ``v ∈ (0, 17)``), then mapped
to ``y = (logit(α + (1 − 2α) v/17) − μ)/σ`` with ``α = 0.05`` and the per-pixel mean and standard deviation of
one dequantized copy of the training pixels. :class:`LogitPreprocessing` also returns ``log|dy/dv|``, so that
NLLs of ``y`` convert to NLLs (and bits/dim) of the dequantized pixels.
"""

from __future__ import annotations

import math

import torch

__all__ = ["ALPHA", "LEVELS", "LogitPreprocessing", "load_digits_split"]

ALPHA = 0.05
"""Logit margin: ``y = logit(α + (1 − 2α) v/17)``."""
LEVELS = 17
"""Dequantized pixel values lie in ``(0, LEVELS)`` (digits pixels take the values 0..16)."""


def load_digits_split(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1797 digits as float64 pixel values 0..16, shuffled with ``seed`` and split 1297 train / 200
    validation / 300 test, each of shape ``(N, 64)``. Needs scikit-learn (``ValueError`` without it)."""
    try:
        from sklearn.datasets import load_digits  # optional dependency, shipped with its data
    except ImportError as error:
        raise ValueError("the digits data set needs scikit-learn: pip install -e '.[experiments]'") from error

    pixels = torch.as_tensor(load_digits().data, dtype=torch.float64)
    order = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(seed))
    pixels = pixels[order]
    return pixels[:1297], pixels[1297:1497], pixels[1497:]


class LogitPreprocessing:
    """``v = pixel + U(0,1) ∈ (0, 17) -> y = (logit(α + (1−2α) v/17) − μ)/σ``, with ``log|dy/dv|`` per sample.

    ``μ, σ`` are the per-pixel statistics of ``train_pixels`` dequantized once with ``seed``.
    """

    def __init__(self, train_pixels: torch.Tensor, seed: int) -> None:
        y = self.logit(self.dequantize(train_pixels, torch.Generator().manual_seed(seed)))
        self.mean, self.std = y.mean(0), y.std(0)

    @staticmethod
    def dequantize(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Pixels plus uniform noise in ``[0, 1)``."""
        return pixels + torch.rand(pixels.shape, generator=generator, dtype=pixels.dtype)

    @staticmethod
    def logit(v: torch.Tensor) -> torch.Tensor:
        """``logit(α + (1 − 2α) v/17)`` elementwise."""
        s = ALPHA + (1 - 2 * ALPHA) * v / LEVELS
        return s.log() - (-s).log1p()

    def __call__(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, log|dy/dv|)`` of dequantized pixels ``v (N, 64)``: shapes ``(N, 64)`` and ``(N,)``."""
        s = ALPHA + (1 - 2 * ALPHA) * v / LEVELS
        y = (self.logit(v) - self.mean) / self.std
        log_jacobian = (math.log((1 - 2 * ALPHA) / LEVELS) - s.log() - (-s).log1p() - self.std.log()).sum(-1)
        return y, log_jacobian
