"""The implicit midpoint rule ``x' = x + h Ω∇H((x + x')/2)``; its discrete adjoint is in ``midpoint_adjoint``.

The rule is symplectic and symmetric for every, also non-separable, Hamiltonian. Each step is solved by an
explicit predictor and a fixed-point corrector (``implicit_midpoint_step``). Gradients come either from
backpropagation through the converged iterations (``implicit_midpoint``; memory grows with the number of steps
and iterations) or from the discrete adjoint of the rule (``implicit_midpoint_adjoint``, and
``ImplicitMidpointSolver.run(..., adjoint=True)`` for layers such as
``canonflow.transforms.ImplicitMidpointFlow``): only one step's graph is alive at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from canonflow.integrators.base import (
    ConvergenceError,
    Hamiltonian,
    HamiltonianGradient,
    Method,
    StepSize,
    integrate,
)
from canonflow.validation import check_positive_float, check_positive_int

__all__ = [
    "IMPLICIT_MIDPOINT",
    "Increments",
    "StageLoss",
    "effective_tolerance",
    "implicit_midpoint",
    "implicit_midpoint_step",
    "next_increments",
    "warm_start_guess",
]

StageLoss = Callable[[int, torch.Tensor], "torch.Tensor | None"]
"""``loss(k, x_k) -> scalar tensor`` (or ``None`` for no term) of the state after step ``k`` (``x_0`` is ``k = 0``)."""


def effective_tolerance(tol: float, dtype: torch.dtype) -> float:
    """``tol`` floored at 16 machine epsilons of ``dtype``, so that float32 solves can converge."""
    return max(tol, 16.0 * torch.finfo(dtype).eps)


def implicit_midpoint_step(
    field: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    h: StepSize,
    *,
    tol: float,
    max_iter: int,
    who: str = "implicit_midpoint_step",
    step: int = 0,
    guess: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float]:
    """Solve one implicit-midpoint step ``x' = x + h f((x + x')/2)`` for a vector field ``f``; return ``(x', r)``.

    ``who`` names the caller in errors and ``step`` is the step index reported by ``ConvergenceError``.

    Predictor: ``guess`` if given (a warm start, e.g. ``warm_start_guess``), else the explicit RK2 (midpoint) step
    ``x' ← x + h f(x + h/2 f(x))`` (two evaluations of ``f``). Corrector: the fixed-point
    iteration ``x'_{k+1} = x + h f((x + x'_k)/2)``, stopped when ``r = max|x'_{k+1} - x'_k| ≤ tol·(1 + max|x'|)``
    (``tol`` floored at 16 machine epsilons). The iterations are recorded by autograd when grad mode is on,
    so the result is differentiable (by backpropagation through the converged iteration). Raises
    ``ConvergenceError`` after ``max_iter`` corrector iterations without convergence. ``f`` must map
    ``(B, 2n) -> (B, 2n)``; the iteration contracts when ``|h|·‖∂f/∂x‖/2 < 1``.
    """
    limit = effective_tolerance(tol, x.dtype)
    y = x + h * field(x + 0.5 * h * field(x)) if guess is None else guess
    residual = math.inf
    for _ in range(max_iter):
        y_next = x + h * field(0.5 * (x + y))
        with torch.no_grad():
            residual = (y_next - y).abs().max().item() if y.numel() else 0.0
            scale = 1.0 + (y_next.abs().max().item() if y.numel() else 0.0)
        y = y_next
        if residual <= limit * scale:
            return y, residual
    raise ConvergenceError(
        f"{who}: the implicit-midpoint fixed-point iteration did not converge at step {step} after {max_iter} "
        f"iterations (residual {residual:.3e} > tol {limit:.1e}); reduce the step size or raise max_iter",
        residual=residual,
        step=step,
        iterations=max_iter,
    )


Increments = tuple[torch.Tensor, ...]
"""The increments ``x_{k+1} − x_k`` of the last (up to two) steps, oldest first: a warm start's memory."""


def warm_start_guess(x: torch.Tensor, increments: Increments | None) -> torch.Tensor | None:
    """The initial iterate ``x + 2Δ_k − Δ_{k−1}`` of the next step from the last two increments ``Δ`` (``None``
    before two steps have been taken: the solve then starts from its RK2 predictor).

    The increment of a midpoint step, ``h Ω∇H(m)``, changes by ``O(h²)`` from step to step, so its linear
    extrapolation is ``O(h³)`` from the solution, as close as the RK2 predictor, but costs no evaluation of ``∇H``.
    The guess only sets where the fixed-point iteration starts: the solution is the same to the solver's tolerance.
    It keeps its graph (as the RK2 predictor does), so that backpropagation through few iterations still sees a
    derivative of the start that is as accurate as the start itself.
    """
    if increments is None or len(increments) < 2:
        return None
    return x + (2.0 * increments[1] - increments[0])


def next_increments(increments: Increments | None, x: torch.Tensor, y: torch.Tensor) -> Increments:
    """``increments`` with the step ``x → y`` appended, keeping the last two."""
    return ((() if increments is None else increments) + (y - x,))[-2:]


def _midpoint_step(
    gradient: HamiltonianGradient,
    x: torch.Tensor,
    h: StepSize,
    carry: Increments | None,
    k: int,
    *,
    tol: float,
    max_iter: int,
    warm_start: bool = False,
) -> tuple[torch.Tensor, Increments | None]:
    """One step ``x' = x + h Ω∇H((x + x')/2)`` (see ``implicit_midpoint_step``); with ``warm_start`` the carry is the
    last increments and the solve starts from their extrapolation (``warm_start_guess``)."""
    guess = warm_start_guess(x, carry) if warm_start else None
    y, _ = implicit_midpoint_step(
        gradient.field, x, h, tol=tol, max_iter=max_iter, who=gradient.who, step=k, guess=guess
    )
    return y, next_increments(carry, x, y) if warm_start else None


IMPLICIT_MIDPOINT = Method("implicit_midpoint", 2, _midpoint_step, separable=False, symplectic=True, symmetric=True)


def implicit_midpoint(
    hamiltonian: Hamiltonian,
    x0: torch.Tensor,
    step_size: StepSize,
    steps: int,
    *,
    trajectory: bool = False,
    tol: float = 1e-12,
    max_iter: int = 100,
    warm_start: bool = False,
) -> torch.Tensor:
    """The implicit midpoint rule ``x' = x + h Ω∇H((x + x')/2)`` for any ``H(q, p)``; order 2, symplectic.

    Symplectic and symmetric for every (also non-separable) Hamiltonian: the map with ``-h`` is the exact
    inverse of the map with ``h``, and quadratic invariants (e.g. angular momentum ``q × p`` of a central
    force) are conserved exactly, up to the solver tolerance. Each step is solved by an explicit RK2
    predictor and a fixed-point corrector (see ``implicit_midpoint_step``), stopped at max-norm change
    ``≤ tol·(1 + max|x'|)``; after ``max_iter`` corrector iterations without convergence it raises
    ``ConvergenceError`` (with ``.residual`` and ``.step``). With ``warm_start`` every step after the
    second starts instead from the extrapolation of the last two increments (``warm_start_guess``): no predictor
    evaluations, the same solution to ``tol`` (but not bit for bit: off by default; training turns it on,
    ``hamiltonian_learning.WindowLoss``). Gradients by backpropagation through the
    iterations; ``implicit_midpoint_adjoint`` gives the same values with constant-memory gradients.
    Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    who = IMPLICIT_MIDPOINT.name
    tol = check_positive_float(tol, "tol", who)
    check_positive_int(max_iter, "max_iter", who)
    options = {"tol": tol, "max_iter": max_iter, "warm_start": bool(warm_start)}
    return integrate(IMPLICIT_MIDPOINT, hamiltonian, x0, step_size, steps, trajectory=trajectory, **options)
