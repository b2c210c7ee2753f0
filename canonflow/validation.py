"""Input validation for canonical layers, switchable globally for speed.

Validation is on by default. ``canonflow.set_validation(False)`` turns it off everywhere (as
``torch.distributions.Distribution.set_default_validate_args`` does); ``validation(False)`` does so inside
a ``with`` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = [
    "set_validation",
    "validation_enabled",
    "validation",
    "check_phase_space",
    "check_positive_int",
    "check_non_negative_int",
]

_ENABLED = True


def set_validation(enabled: bool) -> None:
    """Switch input validation of every canonflow layer on or off."""
    global _ENABLED
    _ENABLED = bool(enabled)


def validation_enabled() -> bool:
    """Whether canonflow layers validate their inputs."""
    return _ENABLED


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
    """Context manager that sets validation on or off and restores the previous setting on exit."""
    previous = _ENABLED
    set_validation(enabled)
    try:
        yield
    finally:
        set_validation(previous)


def check_positive_int(value: object, name: str, who: str) -> int:
    """Return ``value`` if it is a positive ``int``, else raise naming ``who`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{who}: expected {name} to be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{who}: expected {name} to be a positive int, got {value}")
    return value


def check_non_negative_int(value: object, name: str, who: str) -> int:
    """Return ``value`` if it is an ``int >= 0`` (not a ``bool``), else raise ``ValueError`` naming ``who`` and
    ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{who}: expected {name} to be a non-negative int, got {value!r}")
    return value


def check_phase_space(
    x: object,
    n: int,
    who: str,
    reference: torch.Tensor | None = None,
) -> None:
    """Check that ``x`` is a finite floating ``(B, 2n)`` tensor matching ``reference``'s dtype and device.

    Raises ``TypeError`` (not a tensor, integer dtype, dtype or device mismatch) or ``ValueError`` (wrong
    shape, NaN or Inf), each naming ``who`` and what was expected. Does nothing when validation is off.
    """
    if not _ENABLED:
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor of shape (B, {2 * n}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{who}: expected a tensor of shape (B, {2 * n}) = (B, 2n) with n={n}, got {tuple(x.shape)}")
    if x.shape[-1] % 2 != 0:
        raise ValueError(f"{who}: expected an even last dimension 2n = {2 * n} ([q, p] layout), got odd {x.shape[-1]}")
    if x.shape[-1] != 2 * n:
        raise ValueError(
            f"{who}: expected last dimension 2n = {2 * n} (n={n}), got {x.shape[-1]} (n={x.shape[-1] // 2})"
        )
    if reference is not None:
        if x.dtype != reference.dtype:
            raise TypeError(
                f"{who}: input dtype {x.dtype} differs from the layer's {reference.dtype}; "
                f"convert one of them (e.g. layer.to({x.dtype}))"
            )
        if x.device != reference.device:
            raise TypeError(f"{who}: input is on {x.device} but the layer is on {reference.device}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{who}: input contains NaN or Inf")
