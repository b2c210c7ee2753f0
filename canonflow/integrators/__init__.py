"""Batched, differentiable time integrators for Hamilton's equations ``ẋ = Ω∇H(x)``.

Every integrator shares the signature ``integrator(hamiltonian, x0, step_size, steps, *, trajectory=False)``
(``implicit_midpoint`` adds keyword-only ``tol`` and ``max_iter``). ``hamiltonian`` is any callable
``H(x) -> (B,)`` on phase-space batches ``x`` of shape ``(B, 2n)`` laid out ``[q, p]``; ``x0`` is such a batch.
The result is the final state ``x_N`` of shape ``(B, 2n)``, or with ``trajectory=True`` the whole trajectory
``[x_0, x_1, ..., x_N]`` of shape ``(steps + 1, B, 2n)``.

The gradient ``∇H`` is taken by autograd (``canonflow.autodiff.vector_jacobian_product``), so every
integrator is differentiable with respect to ``x0``, ``step_size`` and the parameters of ``H`` when grad
mode is on, and runs under ``torch.no_grad()`` too (building no graph). A Hamiltonian object may provide an
analytic gradient as a method ``gradient(x) -> (B, 2n)`` returning ``∇H(x)`` (``[∂H/∂q, ∂H/∂p]``); it is then
used instead of autograd, which makes long runs of simple systems much faster.

``step_size`` may be negative: the integrators then run backward in time. For the symmetric methods
(``leapfrog``, ``yoshida4``, ``yoshida6``, ``implicit_midpoint``) the map with ``-h`` is the exact inverse of
the map with ``h``; for ``symplectic_euler`` and ``rk4`` it is not. Zero and non-finite step sizes are errors.

Methods, with global error order and structure (``METHODS[name]`` holds them as ``Method`` records):

==================== ===== =========== ==========================================================
name                 order symplectic  notes
==================== ===== =========== ==========================================================
``symplectic_euler``  1    yes         separable H only; ``p' = p - h∂H/∂q(q, p)``, ``q' = q + h∂H/∂p(q, p')``
``leapfrog``          2    yes         separable H only; Störmer–Verlet kick-drift-kick, symmetric
``yoshida4``          4    yes         separable H only; triple-jump composition of leapfrog
``yoshida6``          6    yes         separable H only; Yoshida's 7-stage solution A composition
``implicit_midpoint`` 2    yes         any H; ``x' = x + h Ω∇H((x + x')/2)``, solved by fixed point
``rk4``               4    no          any H; classical Runge–Kutta, a non-symplectic baseline
==================== ===== =========== ==========================================================

The explicit splitting methods are symplectic only for separable ``H(q, p) = T(p) + V(q)``; a Hamiltonian
with attribute ``separable == False`` (e.g. a ``canonflow.systems.HamiltonianSystem``) is refused by them.
A plain callable without that attribute is assumed to be separable. ``implicit_midpoint_adjoint`` is
``implicit_midpoint`` with constant-memory discrete-adjoint gradients.

Layout: ``base`` (the input check, ``∇H``, the ``Method`` record and the fixed-step loop ``integrate``),
``splitting`` (the explicit symplectic methods), ``runge_kutta`` (``rk4``), ``midpoint`` (the implicit
midpoint rule, its solver and its adjoint). A new method is a step function, a ``Method`` and an entry here.
"""

from __future__ import annotations

from canonflow.integrators.base import (
    ConvergenceError,
    Hamiltonian,
    HamiltonianGradient,
    Integrator,
    Method,
    StepSize,
    check_integrator_input,
    integrate,
)
from canonflow.integrators.midpoint import (
    IMPLICIT_MIDPOINT,
    ImplicitMidpointSolver,
    StageLoss,
    effective_tolerance,
    implicit_midpoint,
    implicit_midpoint_adjoint,
    implicit_midpoint_step,
)
from canonflow.integrators.runge_kutta import RK4, rk4
from canonflow.integrators.splitting import (
    LEAPFROG,
    SYMPLECTIC_EULER,
    YOSHIDA4,
    YOSHIDA6,
    leapfrog,
    symplectic_euler,
    yoshida4,
    yoshida6,
)

__all__ = [
    "ConvergenceError",
    "Hamiltonian",
    "HamiltonianGradient",
    "ImplicitMidpointSolver",
    "Integrator",
    "INTEGRATORS",
    "METHODS",
    "Method",
    "StageLoss",
    "StepSize",
    "check_integrator_input",
    "effective_tolerance",
    "get_integrator",
    "implicit_midpoint",
    "implicit_midpoint_adjoint",
    "implicit_midpoint_step",
    "integrate",
    "leapfrog",
    "rk4",
    "symplectic_euler",
    "yoshida4",
    "yoshida6",
]

METHODS: dict[str, Method] = {
    method.name: method for method in (SYMPLECTIC_EULER, LEAPFROG, YOSHIDA4, YOSHIDA6, IMPLICIT_MIDPOINT, RK4)
}
"""The methods by name: step function, order, and whether separable / symplectic / symmetric."""

INTEGRATORS: dict[str, Integrator] = {
    "symplectic_euler": symplectic_euler,
    "leapfrog": leapfrog,
    "yoshida4": yoshida4,
    "yoshida6": yoshida6,
    "implicit_midpoint": implicit_midpoint,
    "rk4": rk4,
}
"""The integrators by name (the keys of ``METHODS``)."""


def get_integrator(name: str) -> Integrator:
    """Return the integrator called ``name`` (a key of ``INTEGRATORS``); unknown names raise ``ValueError``."""
    if name not in INTEGRATORS:
        raise ValueError(f"get_integrator: unknown integrator {name!r}; choose one of {sorted(INTEGRATORS)}")
    return INTEGRATORS[name]
