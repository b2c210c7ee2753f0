"""Vector-Jacobian products that work in every grad mode.

Layers such as ``GradientField`` and ``PointTransform`` need derivatives of a network *inside* their
forward pass. ``vector_jacobian_product`` computes them under ``torch.no_grad()`` too (locally enabling
grad, building no graph for the caller), keeps the graph when grad mode is on (so parameters and inputs
receive gradients), and refuses ``torch.inference_mode()``, where autograd cannot run at all. Under
``torch.compile`` it is ``torch.func.vjp``, which the compiler traces into the graph (same values).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["vector_jacobian_product"]


def vector_jacobian_product(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor, who: str = "canonflow"
) -> torch.Tensor:
    """Return ``vᵀ ∂fn(x)/∂x`` with the shape of ``x``.

    ``v`` has the shape of ``fn(x)``. When grad mode is on, the result is differentiable with respect to
    ``x``, ``v`` and the parameters of ``fn``; under ``torch.no_grad()`` it is a plain tensor.
    """
    if torch.compiler.is_compiling():  # torch.compile traces torch.func's transforms, not autograd.grad
        output, pullback = torch.func.vjp(fn, x)
        _check_output(output, v, who)
        return pullback(v)[0]
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            f"{who}: cannot differentiate inside torch.inference_mode(); inference mode disables autograd, "
            "which this layer needs in its forward pass. Use torch.no_grad() instead."
        )
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_(True)
        y = fn(x_in)
        _check_output(y, v, who)
        (vjp,) = torch.autograd.grad(y, x_in, grad_outputs=v, create_graph=create_graph)
    return vjp


def _check_output(output: torch.Tensor, v: torch.Tensor, who: str) -> None:
    """``ValueError`` unless the function's ``output`` has the shape of the cotangent ``v``."""
    if output.shape != v.shape:
        expected, got = tuple(v.shape), tuple(output.shape)
        raise ValueError(f"{who}: expected the function's output to have shape {expected}, got {got}")
