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
``conformal_leapfrog`` 2   conformally separable H; ``ẋ = Ω∇H − γ(0, p)``: friction half-steps around leapfrog
``conformal_midpoint`` 2   conformally any H; ``ẋ = Ω∇H − γ(0, p)``: friction half-steps around implicit midpoint
==================== ===== =========== ==========================================================

The explicit splitting methods are symplectic only for separable ``H(q, p) = T(p) + V(q)``; a Hamiltonian
with attribute ``separable == False`` (e.g. a ``canonflow.systems.HamiltonianSystem``) is refused by them.
A plain callable without that attribute is assumed to be separable. ``implicit_midpoint_adjoint`` is
``implicit_midpoint`` with constant-memory discrete-adjoint gradients.

The two conformal methods integrate the damped equations with the friction ``γ ≥ 0`` of their ``damping`` argument or
of ``hamiltonian.damping`` (see ``conformal``); ``Φ_h^*ω = e^{−γh}ω`` exactly. The conservative methods refuse a
Hamiltonian whose ``damping`` is set (``check_conservative``), rather than silently drop the friction. A Hamiltonian
that declares ``H = K(p) + V(q)`` with callable parts (``has_separable_parts``) has the splitting methods take
``∂V/∂q`` and ``∂K/∂p`` from one part each.

Layout: ``base`` (the input check, ``∇H``, the ``Method`` record, the fixed-step loop ``integrate`` and
``integrate_times``, which advances rows through their own, irregular sample times),
``splitting`` (the explicit symplectic methods), ``runge_kutta`` (``rk4``), ``midpoint`` (the implicit
midpoint rule, its solver and its adjoint), ``conformal`` (the damped methods). A new method is a step function,
a ``Method`` and an entry here.
"""

from __future__ import annotations

from canonflow.integrators.base import (
    ConvergenceError,
    Hamiltonian,
    HamiltonianGradient,
    Integrator,
    Method,
    StepSize,
    check_conservative,
    check_integrator_input,
    has_separable_parts,
    integrate,
    integrate_times,
)
from canonflow.integrators.conformal import (
    CONFORMAL_LEAPFROG,
    CONFORMAL_MIDPOINT,
    conformal_leapfrog,
    conformal_midpoint,
    damped_vector_field,
    resolve_damping,
)
from canonflow.integrators.midpoint import (
    IMPLICIT_MIDPOINT,
    StageLoss,
    effective_tolerance,
    implicit_midpoint,
    implicit_midpoint_step,
)
from canonflow.integrators.midpoint_adjoint import ImplicitMidpointSolver, implicit_midpoint_adjoint
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
    "check_conservative",
    "check_integrator_input",
    "conformal_leapfrog",
    "conformal_midpoint",
    "damped_vector_field",
    "has_separable_parts",
    "resolve_damping",
    "effective_tolerance",
    "get_integrator",
    "implicit_midpoint",
    "implicit_midpoint_adjoint",
    "implicit_midpoint_step",
    "integrate",
    "integrate_times",
    "leapfrog",
    "rk4",
    "symplectic_euler",
    "yoshida4",
    "yoshida6",
]

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        SYMPLECTIC_EULER,
        LEAPFROG,
        YOSHIDA4,
        YOSHIDA6,
        IMPLICIT_MIDPOINT,
        RK4,
        CONFORMAL_LEAPFROG,
        CONFORMAL_MIDPOINT,
    )
}
"""The methods by name: step function, order, and whether separable / symplectic / symmetric."""

INTEGRATORS: dict[str, Integrator] = {
    "symplectic_euler": symplectic_euler,
    "leapfrog": leapfrog,
    "yoshida4": yoshida4,
    "yoshida6": yoshida6,
    "implicit_midpoint": implicit_midpoint,
    "rk4": rk4,
    "conformal_leapfrog": conformal_leapfrog,
    "conformal_midpoint": conformal_midpoint,
}
"""The integrators by name (the keys of ``METHODS``)."""


def get_integrator(name: str) -> Integrator:
    """Return the integrator called ``name`` (a key of ``INTEGRATORS``); unknown names raise ``ValueError``."""
    if name not in INTEGRATORS:
        raise ValueError(f"get_integrator: unknown integrator {name!r}; choose one of {sorted(INTEGRATORS)}")
    return INTEGRATORS[name]
