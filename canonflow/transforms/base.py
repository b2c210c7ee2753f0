"""The base class of every canonical layer."""

from __future__ import annotations

import torch
from nflows.transforms import Transform

from canonflow.validation import check_phase_space, check_positive_int

__all__ = ["SymplecticTransform"]


class SymplecticTransform(Transform):
    """An exact, invertible, canonical map of phase space ``(B, 2n) -> (B, 2n)`` as an nflows transform.

    ``forward(x)`` maps data to latent and ``inverse(z)`` latent to data (the nflows convention). Both
    return ``(y, logabsdet)`` with ``logabsdet`` zeros of shape ``(B,)`` in the input's dtype and device:
    a canonical map has ``det J = 1``. Subclasses implement ``forward_map`` and ``inverse_map`` on validated
    inputs. Inputs are checked (shape ``(B, 2n)``, floating dtype, finite, same dtype and device as the
    layer's parameters) unless validation is switched off with ``canonflow.set_validation(False)``.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = check_positive_int(n, "n", type(self).__name__)

    def _reference_tensor(self) -> torch.Tensor | None:
        for tensor in self.parameters():
            return tensor
        for tensor in self.buffers():
            if tensor.is_floating_point():
                return tensor
        return None

    def _check(self, x: torch.Tensor, direction: str) -> None:
        check_phase_space(x, self.n, f"{type(self).__name__}.{direction}", self._reference_tensor())

    def forward(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Data -> latent: ``(B, 2n) -> ((B, 2n), logabsdet (B,) = 0)``."""
        self._check(inputs, "forward")
        return self.forward_map(inputs), inputs.new_zeros(inputs.shape[0])

    def inverse(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent -> data: ``(B, 2n) -> ((B, 2n), logabsdet (B,) = 0)``."""
        self._check(inputs, "inverse")
        return self.inverse_map(inputs), inputs.new_zeros(inputs.shape[0])

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """The map itself, data -> latent, on a validated ``(B, 2n)`` batch (what a new layer implements)."""
        raise NotImplementedError

    def inverse_map(self, z: torch.Tensor) -> torch.Tensor:
        """Its exact inverse, latent -> data, on a validated ``(B, 2n)`` batch (what a new layer implements)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"n={self.n}"
