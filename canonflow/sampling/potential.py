"""Potentials ``U(q) -> (B,)`` wrapped for samplers: shape checks, gradients and evaluation counts."""

from __future__ import annotations

from collections.abc import Callable

import torch

from canonflow.validation import check_energy

__all__ = ["Potential", "CountingPotential", "check_initial"]

Potential = Callable[[torch.Tensor], torch.Tensor]


class CountingPotential:
    """``U`` with a per-row cache of ``(U(q), ∇U(q))`` and counts of per-row evaluations.

    ``value_and_grad(q)`` returns ``U(q)`` ``(B,)`` and ``∇U(q)`` ``(B, d)`` (by autograd, in any grad mode),
    recomputing only the rows whose ``q`` differs from the cached one; ``gradient_evaluations`` counts the
    recomputed rows. ``value(q)`` evaluates ``U`` alone and counts ``potential_evaluations``. ``remember`` seeds
    the cache (e.g. with the current states of the chains, whose gradients are known).
    """

    def __init__(self, potential: Potential, dim: int, who: str) -> None:
        if not callable(potential):
            raise TypeError(f"{who}: expected potential to be a callable U(q) -> (B,), got {type(potential).__name__}")
        self.potential = potential
        self.dim = dim
        self.who = who
        self.gradient_evaluations = 0
        self.potential_evaluations = 0
        self._q: torch.Tensor | None = None
        self._u: torch.Tensor | None = None
        self._g: torch.Tensor | None = None

    def _call(self, q: torch.Tensor) -> torch.Tensor:
        return check_energy(self.potential(q), q.shape[0], self.who, name="potential", domain=f"(B, {self.dim})")

    def value(self, q: torch.Tensor) -> torch.Tensor:
        """``U(q)``, shape ``(B,)``, without gradient."""
        self.potential_evaluations += q.shape[0]
        with torch.no_grad():
            return self._call(q).detach()

    def _compute(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.gradient_evaluations += q.shape[0]
        with torch.enable_grad():
            leaf = q.detach().requires_grad_(True)
            u = self._call(leaf)
            if not u.requires_grad:  # U does not depend on q
                return u.detach(), torch.zeros_like(q)
            (g,) = torch.autograd.grad(u.sum(), leaf)
        return u.detach(), g.detach()

    def value_and_grad(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(U(q), ∇U(q))`` of shapes ``(B,)`` and ``(B, d)``, reusing cached rows."""
        if self._q is None or self._q.shape != q.shape:
            u, g = self._compute(q)
        else:
            stale = ~(q == self._q).all(-1)
            u, g = self._u.clone(), self._g.clone()
            if stale.any():
                u[stale], g[stale] = self._compute(q[stale])
        self.remember(q, u, g)
        return u, g

    def remember(self, q: torch.Tensor, u: torch.Tensor, g: torch.Tensor) -> None:
        """Seed the cache with known values ``U(q) = u`` and ``∇U(q) = g``."""
        self._q, self._u, self._g = q.detach().clone(), u, g


def check_initial(x0: object, potential: CountingPotential, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check starting states ``(chains, d)`` and return ``(U(x0), ∇U(x0))``; non-finite values are errors."""
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point():
        raise TypeError(f"{who}: expected x0 to be a floating-point torch.Tensor of shape (chains, d)")
    if x0.dim() != 2 or x0.shape[0] == 0 or x0.shape[1] == 0:
        raise ValueError(f"{who}: expected x0 of shape (chains, d) with chains, d >= 1, got {tuple(x0.shape)}")
    if not torch.isfinite(x0).all():
        raise ValueError(f"{who}: x0 contains NaN or Inf")
    u, g = potential.value_and_grad(x0)
    bad = ~(torch.isfinite(u) & torch.isfinite(g).all(-1))
    if bad.any():
        chains = bad.nonzero().flatten().tolist()[:10]
        raise ValueError(f"{who}: the potential or its gradient is not finite at x0 for chains {chains}")
    return u, g
