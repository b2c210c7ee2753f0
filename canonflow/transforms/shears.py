"""Generating-function shears: the canonical analogue of additive (NICE) couplings."""

from __future__ import annotations

import torch
from torch import nn

from canonflow.phase_space import join, split
from canonflow.transforms.base import SymplecticTransform

__all__ = ["MomentumShear", "PositionShear"]


def _field_dimension(field: nn.Module, n: int | None, who: str) -> int:
    if n is None:
        n = getattr(field, "n", None)
    if n is None:
        raise ValueError(f"{who}: cannot infer n from the field; pass n explicitly")
    return n


class MomentumShear(SymplecticTransform):
    """``(q, p) -> (q, p - ∇F(q))``, shapes ``(B, 2n) -> (B, 2n)``; ``forward`` is data -> latent.

    The type-2 generating function ``G(q, p') = q·p' + F(q)``. ``field`` maps ``(B, n) -> (B, n)`` and must
    be a gradient field (``canonflow.nn.IrrotationalMLP`` or ``canonflow.nn.GradientField``), which is
    what makes the map canonical. ``inverse``: ``(q, p) -> (q, p + ∇F(q))``.

    >>> import torch
    >>> from canonflow.nn import IrrotationalMLP
    >>> shear = MomentumShear(IrrotationalMLP(1, hidden=8)).double()
    >>> x = torch.tensor([[0.5, 1.0]], dtype=torch.float64)
    >>> y, logabsdet = shear(x)
    >>> bool(y[0, 0] == x[0, 0]), logabsdet.item()
    (True, 0.0)
    """

    def __init__(self, field: nn.Module, n: int | None = None) -> None:
        super().__init__(_field_dimension(field, n, type(self).__name__))
        self.field = field

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        return join(q, p - self.field(q))

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        return join(q, p + self.field(q))


class PositionShear(SymplecticTransform):
    """``(q, p) -> (q + ∇G(p), p)``, shapes ``(B, 2n) -> (B, 2n)``; ``forward`` is data -> latent.

    The momentum-space counterpart of ``MomentumShear``; ``field`` maps ``(B, n) -> (B, n)`` and must be a
    gradient field. ``inverse``: ``(q, p) -> (q - ∇G(p), p)``.
    """

    def __init__(self, field: nn.Module, n: int | None = None) -> None:
        super().__init__(_field_dimension(field, n, type(self).__name__))
        self.field = field

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        return join(q + self.field(p), p)

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        return join(q - self.field(p), p)
