"""Elementary canonical maps: the exchange of positions and momenta, and symplectic scaling."""

from __future__ import annotations

import torch
from torch import nn

from canonflow.phase_space import join, split
from canonflow.transforms.base import SymplecticTransform

__all__ = ["Exchange", "SymplecticScaling"]


class Exchange(SymplecticTransform):
    """``(q, p) -> (p, -q)``, shapes ``(B, 2n) -> (B, 2n)``; ``forward`` is data -> latent.

    A quarter turn in every ``(q_k, p_k)`` plane; it lets shears of ``q`` act on ``p`` and vice versa.
    ``inverse``: ``(q, p) -> (-p, q)``. No parameters.
    """

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        return join(p, -q)

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        return join(-p, q)


class SymplecticScaling(SymplecticTransform):
    """``(q, p) -> (q ⊙ eˢ, p ⊙ e⁻ˢ)`` with a learnable ``s ∈ ℝⁿ`` (starts at 0); ``forward`` is data -> latent.

    Shapes ``(B, 2n) -> (B, 2n)``. ``inverse``: ``(q, p) -> (q ⊙ e⁻ˢ, p ⊙ eˢ)``.
    """

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.log_scale = nn.Parameter(torch.zeros(n))

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        scale = self.log_scale.exp()
        return join(q * scale, p / scale)

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        scale = self.log_scale.exp()
        return join(q / scale, p * scale)
