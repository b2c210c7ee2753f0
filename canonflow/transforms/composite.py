"""Compositions of canonical layers, validated once at the entry."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from nflows.transforms import CompositeTransform

from canonflow.transforms.base import SymplecticTransform
from canonflow.validation import check_phase_space

__all__ = ["SymplecticComposite"]


class SymplecticComposite(CompositeTransform):
    """``x -> f_L(⋯ f_1(x))`` for canonical layers ``f_i`` on the same ``(B, 2n)`` phase space.

    An nflows ``CompositeTransform`` (``forward`` data -> latent, ``inverse`` latent -> data, ``logabsdet``
    zeros of shape ``(B,)``) that validates its input once, at the entry, instead of once per layer: a
    composition of canonical maps is canonical, so the inner layers need no checks of their own.
    """

    def __init__(self, transforms: Iterable[SymplecticTransform]) -> None:
        transforms = list(transforms)
        if not transforms:
            raise ValueError("SymplecticComposite: expected at least one layer")
        for layer in transforms:
            if not isinstance(layer, SymplecticTransform):
                raise TypeError(f"SymplecticComposite: expected SymplecticTransform layers, got {type(layer).__name__}")
        sizes = {layer.n for layer in transforms}
        if len(sizes) != 1:
            raise ValueError(f"SymplecticComposite: all layers must act on the same n, got {sorted(sizes)}")
        super().__init__(transforms)
        self.n = sizes.pop()

    @property
    def layers(self) -> tuple[SymplecticTransform, ...]:
        """The layers, in forward (data -> latent) order."""
        return tuple(self._transforms)

    def _check(self, x: torch.Tensor, direction: str) -> None:
        reference = next(self.parameters(), None)
        check_phase_space(x, self.n, f"{type(self).__name__}.{direction}", reference)

    def forward(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Data -> latent: ``(B, 2n) -> ((B, 2n), logabsdet (B,) = 0)``."""
        self._check(inputs, "forward")
        outputs = inputs
        for layer in self._transforms:
            outputs = layer.forward_map(outputs)
        return outputs, inputs.new_zeros(inputs.shape[0])

    def inverse(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent -> data: ``(B, 2n) -> ((B, 2n), logabsdet (B,) = 0)``."""
        self._check(inputs, "inverse")
        outputs = inputs
        for layer in reversed(self._transforms):
            outputs = layer.inverse_map(outputs)
        return outputs, inputs.new_zeros(inputs.shape[0])
