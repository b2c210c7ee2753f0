"""Checks for canonical maps, public so users can test their own layers.

All functions take a transform with the nflows interface (``forward(x) -> (y, logabsdet)``) and a batch
``x`` of shape ``(B, 2n)``; use float64 for tight tolerances. Jacobians are taken per sample with autograd,
so transforms whose output for one sample depends on other samples (``ZeroCenter`` in training mode) must be
checked in eval mode.
"""

from __future__ import annotations

import torch
from nflows.transforms import Transform

from canonflow.phase_space import symplectic_form

__all__ = [
    "jacobian",
    "symplectic_defect",
    "assert_symplectic",
    "assert_invertible",
    "round_trip_error",
    "assert_logabsdet_matches_jacobian",
]


def _direction(transform: Transform, inverse: bool):
    return transform.inverse if inverse else transform.forward


def jacobian(transform: Transform, x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Per-sample Jacobians ``∂y_b/∂x_b`` of shape ``(B, 2n, 2n)`` (of ``inverse`` if ``inverse=True``)."""
    fn = _direction(transform, inverse)
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        y, _ = fn(x_in)
        rows = [torch.autograd.grad(y[:, i].sum(), x_in, retain_graph=True)[0] for i in range(y.shape[1])]
    return torch.stack(rows, dim=1)


def symplectic_defect(transform: Transform, x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Per-sample ``max |JᵀΩJ - Ω|`` of shape ``(B,)``; zero (to round-off) for a canonical map."""
    jac = jacobian(transform, x, inverse)
    omega = symplectic_form(x.shape[1] // 2, dtype=x.dtype, device=x.device)
    return (jac.transpose(1, 2) @ omega @ jac - omega).abs().amax(dim=(1, 2))


def assert_symplectic(transform: Transform, x: torch.Tensor, atol: float = 1e-10, inverse: bool = False) -> None:
    """Raise ``AssertionError`` unless ``JᵀΩJ = Ω`` to ``atol`` at every sample of ``x``."""
    defect = symplectic_defect(transform, x, inverse).max().item()
    if not defect <= atol:
        raise AssertionError(f"{type(transform).__name__} is not symplectic: max|JᵀΩJ - Ω| = {defect:.3e} > {atol:.1e}")


def round_trip_error(transform: Transform, x: torch.Tensor, inverse: bool = False) -> float:
    """``max |inverse(forward(x)) − x|`` over the batch ``x`` of shape ``(B, 2n)`` (``inverse=True``:
    ``max |forward(inverse(x)) − x|``); zero up to round-off for an exact layer."""
    first, second = (transform.inverse, transform.forward) if inverse else (transform.forward, transform.inverse)
    with torch.no_grad():
        return (second(first(x)[0])[0] - x).abs().max().item()


def assert_invertible(transform: Transform, x: torch.Tensor, atol: float = 1e-10) -> None:
    """Raise ``AssertionError`` unless ``inverse(forward(x)) = x`` and ``forward(inverse(x)) = x`` to ``atol``."""
    for inverse, label in ((False, "inverse(forward(x))"), (True, "forward(inverse(x))")):
        error = round_trip_error(transform, x, inverse)
        if not error <= atol:
            raise AssertionError(f"{type(transform).__name__}: max|{label} - x| = {error:.3e} > {atol:.1e}")


def assert_logabsdet_matches_jacobian(
    transform: Transform, x: torch.Tensor, atol: float = 1e-10, inverse: bool = False
) -> None:
    """Raise ``AssertionError`` unless the returned ``logabsdet`` equals ``slogdet(J)`` to ``atol``."""
    _, logabsdet = _direction(transform, inverse)(x)
    _, reference = torch.linalg.slogdet(jacobian(transform, x, inverse))
    error = (logabsdet - reference).abs().max().item()
    if logabsdet.shape != x.shape[:1] or not error <= atol:
        raise AssertionError(
            f"{type(transform).__name__}: logabsdet {tuple(logabsdet.shape)} differs from log|det J| by {error:.3e}"
        )
