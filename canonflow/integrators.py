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

Methods, with global error order and structure:

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
A plain callable without that attribute is assumed to be separable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch

from canonflow.autodiff import vector_jacobian_product
from canonflow.validation import check_phase_space, check_positive_int

__all__ = [
    "ConvergenceError",
    "Integrator",
    "INTEGRATORS",
    "get_integrator",
    "symplectic_euler",
    "leapfrog",
    "yoshida4",
    "yoshida6",
    "implicit_midpoint",
    "implicit_midpoint_step",
    "rk4",
    "check_integrator_input",
    "effective_tolerance",
]

Hamiltonian = Callable[[torch.Tensor], torch.Tensor]
StepSize = float | torch.Tensor


class Integrator(Protocol):
    """``integrator(hamiltonian, x0, step_size, steps, *, trajectory=False) -> (B, 2n) or (steps+1, B, 2n)``."""

    def __call__(
        self, hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
    ) -> torch.Tensor: ...


class ConvergenceError(RuntimeError):
    """The fixed-point iteration of an implicit step did not converge within ``max_iter`` iterations.

    Attributes: ``residual`` (the last max-norm change of the iterate, a float), ``step`` (the index of the
    failing step, counted from 0) and ``iterations`` (the number of corrector iterations run).
    """

    def __init__(self, message: str, residual: float, step: int, iterations: int) -> None:
        super().__init__(message)
        self.residual = residual
        self.step = step
        self.iterations = iterations


# ----------------------------------------------------------------------------------------------------------------
# Validation and the vector field


def _check_hamiltonian(hamiltonian: object, who: str, needs_separable: bool) -> None:
    if not callable(hamiltonian):
        raise TypeError(f"{who}: expected a callable Hamiltonian H(x) -> (B,), got {type(hamiltonian).__name__}")
    if needs_separable and getattr(hamiltonian, "separable", True) is False:
        raise ValueError(
            f"{who}: this explicit splitting method needs a separable Hamiltonian H = T(p) + V(q), but the given "
            f"Hamiltonian has separable=False; use implicit_midpoint (symplectic) or rk4 instead"
        )


def _check_state(x0: object, who: str) -> None:
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"{who}: expected x0 to be a torch.Tensor of shape (B, 2n), got {type(x0).__name__}")
    if x0.dim() != 2 or x0.shape[-1] == 0 or x0.shape[-1] % 2 != 0:
        raise ValueError(f"{who}: expected x0 of shape (B, 2n) laid out [q, p], got shape {tuple(x0.shape)}")
    check_phase_space(x0, x0.shape[-1] // 2, who)


def _check_step_size(step_size: object, who: str) -> None:
    if isinstance(step_size, torch.Tensor):
        if step_size.numel() != 1:
            raise ValueError(f"{who}: expected a scalar step_size, got a tensor of shape {tuple(step_size.shape)}")
        value = float(step_size.detach())
    elif isinstance(step_size, (int, float)) and not isinstance(step_size, bool):
        value = float(step_size)
    else:
        raise TypeError(f"{who}: expected step_size to be a float or a scalar tensor, got {type(step_size).__name__}")
    if not math.isfinite(value) or value == 0.0:
        raise ValueError(f"{who}: expected a finite, non-zero step_size (negative runs backward in time), got {value}")


def check_integrator_input(
    hamiltonian: object, x0: object, step_size: object, steps: object, who: str, needs_separable: bool
) -> None:
    """Raise a ``TypeError``/``ValueError`` naming ``who`` unless the arguments of an integrator are valid.

    ``hamiltonian`` callable (and ``separable`` when ``needs_separable``), ``x0`` a finite floating
    ``(B, 2n)`` tensor, ``step_size`` a finite non-zero float or scalar tensor, ``steps`` a positive int.
    """
    _check_hamiltonian(hamiltonian, who, needs_separable)
    _check_state(x0, who)
    _check_step_size(step_size, who)
    check_positive_int(steps, "steps", who)


def _gradient(hamiltonian: Hamiltonian, x: torch.Tensor, who: str) -> torch.Tensor:
    """``∇H(x)`` of shape ``(B, 2n)``, from ``hamiltonian.gradient`` if it has one, else by autograd."""
    analytic = getattr(hamiltonian, "gradient", None)
    if callable(analytic):
        grad = analytic(x)
        if grad.shape != x.shape:
            raise ValueError(
                f"{who}: the Hamiltonian's gradient(x) must return the shape of x {tuple(x.shape)}, "
                f"got {tuple(grad.shape)}"
            )
        return grad

    def scalar(y: torch.Tensor) -> torch.Tensor:
        value = hamiltonian(y)
        if not isinstance(value, torch.Tensor) or value.shape != y.shape[:1]:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{who}: the Hamiltonian must map (B, 2n) to (B,) = ({y.shape[0]},), got {shape}")
        return value

    return vector_jacobian_product(scalar, x, x.new_ones(x.shape[0]), who=who)


def _field(gradient: torch.Tensor) -> torch.Tensor:
    """``Ω∇H = (∂H/∂p, -∂H/∂q)`` from ``∇H = (∂H/∂q, ∂H/∂p)``."""
    n = gradient.shape[-1] // 2
    return torch.cat([gradient[..., n:], -gradient[..., :n]], dim=-1)


def _output(states: list[torch.Tensor], trajectory: bool) -> torch.Tensor:
    return torch.stack(states) if trajectory else states[-1]


# ----------------------------------------------------------------------------------------------------------------
# Explicit splitting methods (separable H)


def _leapfrog_step(
    hamiltonian: Hamiltonian, q: torch.Tensor, p: torch.Tensor, dv: torch.Tensor, h: StepSize, who: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One kick-drift-kick step; ``dv = ∂H/∂q(q)`` on entry, and on exit at the new ``q`` (reused next step)."""
    n = q.shape[-1]
    p = p - 0.5 * h * dv
    q = q + h * _gradient(hamiltonian, torch.cat([q, p], -1), who)[:, n:]
    dv = _gradient(hamiltonian, torch.cat([q, p], -1), who)[:, :n]
    return q, p - 0.5 * h * dv, dv


def _composition(
    hamiltonian: Hamiltonian,
    x0: torch.Tensor,
    step_size: StepSize,
    steps: int,
    weights: tuple[float, ...],
    trajectory: bool,
    who: str,
) -> torch.Tensor:
    """``steps`` steps of the composition ``Φ_{w_k h} ∘ ... ∘ Φ_{w_1 h}`` of leapfrog steps ``Φ``."""
    n = x0.shape[-1] // 2
    q, p = x0[:, :n], x0[:, n:]
    dv = _gradient(hamiltonian, x0, who)[:, :n]
    states = [x0]
    for _ in range(steps):
        for w in weights:
            q, p, dv = _leapfrog_step(hamiltonian, q, p, dv, w * step_size, who)
        if trajectory:
            states.append(torch.cat([q, p], -1))
    if not trajectory:
        states.append(torch.cat([q, p], -1))
    return _output(states, trajectory)


def symplectic_euler(
    hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
) -> torch.Tensor:
    """Symplectic Euler (variant "kick then drift") for a separable ``H = T(p) + V(q)``; order 1, symplectic.

    One step: ``p' = p - h ∂H/∂q(q, p)``, then ``q' = q + h ∂H/∂p(q, p')``. It is the composition of two
    canonical shears, so it is exactly symplectic, but not symmetric: the map with ``-h`` is not its inverse.
    Returns ``(B, 2n)``, or ``(steps + 1, B, 2n)`` with ``trajectory=True``.
    """
    who = "symplectic_euler"
    check_integrator_input(hamiltonian, x0, step_size, steps, who, needs_separable=True)
    n = x0.shape[-1] // 2
    q, p = x0[:, :n], x0[:, n:]
    states = [x0]
    for _ in range(steps):
        p = p - step_size * _gradient(hamiltonian, torch.cat([q, p], -1), who)[:, :n]
        q = q + step_size * _gradient(hamiltonian, torch.cat([q, p], -1), who)[:, n:]
        if trajectory:
            states.append(torch.cat([q, p], -1))
    if not trajectory:
        states.append(torch.cat([q, p], -1))
    return _output(states, trajectory)


def leapfrog(
    hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
) -> torch.Tensor:
    """Störmer–Verlet (leapfrog, kick-drift-kick) for a separable ``H = T(p) + V(q)``; order 2, symplectic.

    One step: ``p½ = p - h/2 ∂H/∂q(q)``, ``q' = q + h ∂H/∂p(p½)``, ``p' = p½ - h/2 ∂H/∂q(q')``. It is symmetric,
    so running it with ``-h`` from ``x_N`` returns ``x_0`` to round-off (time reversibility). The half kicks
    of consecutive steps share one gradient evaluation. Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    who = "leapfrog"
    check_integrator_input(hamiltonian, x0, step_size, steps, who, needs_separable=True)
    return _composition(hamiltonian, x0, step_size, steps, (1.0,), trajectory, who)


_CBRT2 = 2.0 ** (1.0 / 3.0)
_YOSHIDA4 = (1.0 / (2.0 - _CBRT2), -_CBRT2 / (2.0 - _CBRT2), 1.0 / (2.0 - _CBRT2))
_Y6_W1, _Y6_W2, _Y6_W3 = -1.17767998417887, 0.235573213359357, 0.784513610477560
_Y6_W0 = 1.0 - 2.0 * (_Y6_W1 + _Y6_W2 + _Y6_W3)
_YOSHIDA6 = (_Y6_W3, _Y6_W2, _Y6_W1, _Y6_W0, _Y6_W1, _Y6_W2, _Y6_W3)


def yoshida4(
    hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
) -> torch.Tensor:
    """Yoshida's 4th-order "triple jump" for a separable ``H``: ``Φ_{w₁h} ∘ Φ_{w₀h} ∘ Φ_{w₁h}``, ``Φ`` = leapfrog.

    ``w₁ = 1 / (2 - 2^{1/3})``, ``w₀ = -2^{1/3} / (2 - 2^{1/3})`` (so ``2w₁ + w₀ = 1``). Symmetric and
    symplectic, global error ``O(h⁴)``. Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    who = "yoshida4"
    check_integrator_input(hamiltonian, x0, step_size, steps, who, needs_separable=True)
    return _composition(hamiltonian, x0, step_size, steps, _YOSHIDA4, trajectory, who)


def yoshida6(
    hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
) -> torch.Tensor:
    """Yoshida's 6th-order composition (solution A) of 7 leapfrog steps for a separable ``H``.

    ``Φ_{w₃h} Φ_{w₂h} Φ_{w₁h} Φ_{w₀h} Φ_{w₁h} Φ_{w₂h} Φ_{w₃h}`` with ``w₁ = -1.17767998417887``,
    ``w₂ = 0.235573213359357``, ``w₃ = 0.784513610477560``, ``w₀ = 1 - 2(w₁ + w₂ + w₃)`` (Yoshida 1990).
    Symmetric and symplectic, global error ``O(h⁶)``. Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    who = "yoshida6"
    check_integrator_input(hamiltonian, x0, step_size, steps, who, needs_separable=True)
    return _composition(hamiltonian, x0, step_size, steps, _YOSHIDA6, trajectory, who)


# ----------------------------------------------------------------------------------------------------------------
# Implicit midpoint


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
) -> tuple[torch.Tensor, float]:
    """Solve one implicit-midpoint step ``x' = x + h f((x + x')/2)`` for a vector field ``f``; return ``(x', r)``.

    ``who`` names the caller in errors and ``step`` is the step index reported by ``ConvergenceError``.

    Predictor: the explicit RK2 (midpoint) step ``x' ← x + h f(x + h/2 f(x))``. Corrector: the fixed-point
    iteration ``x'_{k+1} = x + h f((x + x'_k)/2)``, stopped when ``r = max|x'_{k+1} - x'_k| ≤ tol·(1 + max|x'|)``
    (``tol`` floored at 16 machine epsilons). The iterations are recorded by autograd when grad mode is on,
    so the result is differentiable (by backpropagation through the converged iteration). Raises
    ``ConvergenceError`` after ``max_iter`` corrector iterations without convergence. ``f`` must map
    ``(B, 2n) -> (B, 2n)``; the iteration contracts when ``|h|·‖∂f/∂x‖/2 < 1``.
    """
    limit = effective_tolerance(tol, x.dtype)
    y = x + h * field(x + 0.5 * h * field(x))
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


def implicit_midpoint(
    hamiltonian: Hamiltonian,
    x0: torch.Tensor,
    step_size: StepSize,
    steps: int,
    *,
    trajectory: bool = False,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> torch.Tensor:
    """The implicit midpoint rule ``x' = x + h Ω∇H((x + x')/2)`` for any ``H(q, p)``; order 2, symplectic.

    Symplectic and symmetric for every (also non-separable) Hamiltonian: the map with ``-h`` is the exact
    inverse of the map with ``h``, and quadratic invariants (e.g. angular momentum ``q × p`` of a central
    force) are conserved exactly, up to the solver tolerance. Each step is solved by an explicit RK2
    predictor and a fixed-point corrector (see ``implicit_midpoint_step``), stopped at max-norm change
    ``≤ tol·(1 + max|x'|)``; after ``max_iter`` corrector iterations without convergence it raises
    ``ConvergenceError`` (with ``.residual`` and ``.step``). Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    who = "implicit_midpoint"
    check_integrator_input(hamiltonian, x0, step_size, steps, who, needs_separable=False)
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol > 0 and math.isfinite(tol)):
        raise ValueError(f"{who}: expected a positive finite tol, got {tol!r}")
    check_positive_int(max_iter, "max_iter", who)

    def field(x: torch.Tensor) -> torch.Tensor:
        return _field(_gradient(hamiltonian, x, who))

    states = [x0]
    x = x0
    for k in range(steps):
        x, _ = implicit_midpoint_step(field, x, step_size, tol=tol, max_iter=max_iter, who=who, step=k)
        if trajectory:
            states.append(x)
    if not trajectory:
        states.append(x)
    return _output(states, trajectory)


# ----------------------------------------------------------------------------------------------------------------
# Non-symplectic baseline


def rk4(
    hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
) -> torch.Tensor:
    """Classical 4th-order Runge–Kutta for ``ẋ = Ω∇H(x)``, any ``H``; a **non-symplectic** baseline.

    ``k₁ = f(x)``, ``k₂ = f(x + h/2 k₁)``, ``k₃ = f(x + h/2 k₂)``, ``k₄ = f(x + h k₃)``,
    ``x' = x + h/6 (k₁ + 2k₂ + 2k₃ + k₄)``. Accurate (``O(h⁴)``) but its energy error drifts secularly over
    long runs. Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    who = "rk4"
    check_integrator_input(hamiltonian, x0, step_size, steps, who, needs_separable=False)

    def f(x: torch.Tensor) -> torch.Tensor:
        return _field(_gradient(hamiltonian, x, who))

    h = step_size
    states = [x0]
    x = x0
    for _ in range(steps):
        k1 = f(x)
        k2 = f(x + 0.5 * h * k1)
        k3 = f(x + 0.5 * h * k2)
        k4 = f(x + h * k3)
        x = x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        if trajectory:
            states.append(x)
    if not trajectory:
        states.append(x)
    return _output(states, trajectory)


INTEGRATORS: dict[str, Integrator] = {
    "symplectic_euler": symplectic_euler,
    "leapfrog": leapfrog,
    "yoshida4": yoshida4,
    "yoshida6": yoshida6,
    "implicit_midpoint": implicit_midpoint,
    "rk4": rk4,
}
"""The integrators by name."""


def get_integrator(name: str) -> Integrator:
    """Return the integrator called ``name`` (a key of ``INTEGRATORS``); unknown names raise ``ValueError``."""
    if name not in INTEGRATORS:
        raise ValueError(f"get_integrator: unknown integrator {name!r}; choose one of {sorted(INTEGRATORS)}")
    return INTEGRATORS[name]
