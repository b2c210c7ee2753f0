"""Shared set-up of the flow, distribution and estimator tests: Gaussian targets, grids, quiet training."""

from __future__ import annotations

import math

import torch
from randomness import gen

from canonflow.training import TrainConfig

F64 = torch.float64
CENTRES = [[1.0, -0.5], [-1.5, 0.5], [0.2, 1.2]]
"""Three distinct centres of an n = 1 mixture."""


class QuadraticEnergy:
    """``H(x) = xᵀ A x / 2`` with exact ``F(β) = −(1/β) ln((2π/β)ⁿ / sqrt(det A))``."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((x @ self.matrix) * x).sum(-1)

    def free_energy(self, beta: float) -> float:
        dim = self.matrix.shape[0]
        log_z = 0.5 * dim * math.log(2 * math.pi / beta) - 0.5 * float(torch.logdet(self.matrix))
        return -log_z / beta


def gaussian_target(n: int, seed: int = 0) -> QuadraticEnergy:
    """A random positive-definite quadratic energy on ``(B, 2n)``."""
    generator = gen(seed)
    factor = torch.randn(2 * n, 2 * n, generator=generator, dtype=F64) / math.sqrt(2 * n)
    return QuadraticEnergy(factor @ factor.T + 0.5 * torch.eye(2 * n, dtype=F64))


def quiet(steps: int, lr: float, **kwargs) -> TrainConfig:
    """A ``TrainConfig`` without progress bars."""
    return TrainConfig(steps=steps, lr=lr, progress=False, **kwargs)


def grid(half_width: float, points: int) -> tuple[torch.Tensor, float]:
    """A square ``points × points`` grid on ``[−half_width, half_width]²`` and its cell area."""
    axis = torch.linspace(-half_width, half_width, points, dtype=F64)
    return torch.cartesian_prod(axis, axis), float(axis[1] - axis[0]) ** 2
