"""Stan's initialization of chains: uniform draws on the unconstrained scale, and an optional mode search.

:func:`initial_points` draws ``U(−r, r)`` (``r = 2``) on the unconstrained scale, redrawing a chain until ``U`` and
``∇U`` are finite; :func:`find_mode` runs L-BFGS from there.
"""

from __future__ import annotations

import math

import torch

from canonflow.sampling.potential import CountingPotential, Potential
from canonflow.validation import check_positive_int

__all__ = ["find_mode", "initial_points"]


def initial_points(
    potential: Potential,
    dim: int,
    chains: int,
    *,
    radius: float = 2.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    attempts: int = 100,
    mode_search: bool = False,
) -> torch.Tensor:
    """Stan's initialization: ``chains`` points ``U(−radius, radius)^d`` ``(chains, d)``, each redrawn (up to
    ``attempts`` times) until ``U`` and ``∇U`` are finite there; a ``ValueError`` if some chain never is. With
    ``mode_search``, each point is then moved to the local minimum of ``U`` that L-BFGS finds from it
    (:func:`find_mode`; a chain whose search left the support keeps its draw)."""
    who = "initial_points"
    check_positive_int(dim, "dim", who)
    check_positive_int(chains, "chains", who)
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"{who}: expected a positive finite radius, got {radius}")
    counted = CountingPotential(potential, dim, who)
    x = torch.empty(chains, dim, dtype=dtype)
    todo = torch.ones(chains, dtype=torch.bool)
    for _ in range(attempts):
        count = int(todo.sum())
        x[todo] = (2 * torch.rand(count, dim, generator=generator, dtype=dtype) - 1) * radius
        u, g = counted.value_and_grad(x[todo])
        good = torch.isfinite(u) & torch.isfinite(g).all(-1)
        index = todo.nonzero().flatten()
        todo[index[good]] = False
        if not todo.any():
            if mode_search:
                modes, values = find_mode(potential, x)
                x = torch.where(torch.isfinite(values)[:, None], modes, x)
            return x
    raise ValueError(f"{who}: no point with finite U and ∇U found in {attempts} draws from U(−{radius}, {radius})")


def find_mode(
    potential: Potential, x0: torch.Tensor, *, max_iter: int = 500, tolerance: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local minima of ``U`` from the starts ``x0`` ``(B, d)`` by L-BFGS (strong-Wolfe line search) on ``Σ_b U(x_b)``
    (the rows are independent, so its minimizer is every row's). Returns the points ``(B, d)`` and ``U`` there
    ``(B,)`` (``+∞`` where the search left the support)."""
    who = "find_mode"
    if not isinstance(x0, torch.Tensor) or x0.dim() != 2 or not x0.is_floating_point():
        raise ValueError(f"{who}: expected starts x0 of shape (B, d), floating point")
    x = x0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [x], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance, tolerance_change=1e-12, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = potential(x).sum()
        if not torch.isfinite(value):
            return value.detach().new_tensor(math.inf).requires_grad_(False)
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        mode = x.detach()
        u = potential(mode)
    return mode, torch.where(torch.isfinite(u), u, torch.full_like(u, math.inf))
