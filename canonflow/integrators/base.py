"""The common part of every integrator: input check, ``∇H``, a method record and the fixed-step loop.

A method is a step function ``step(gradient, x, h, carry, k, **options) -> (x', carry')`` that maps the state
``x`` of shape ``(B, 2n)`` to the state one step of size ``h`` later, plus its order and structure (a
``Method``). ``integrate`` checks the inputs once, runs ``steps`` steps and collects the states. ``carry`` is
what a method passes from one step to the next — ``None`` before the first step; the splitting methods keep the
force ``∂H/∂q`` of the end of a step for the first half kick of the next ("first same as last") — and ``k`` is
the index of the step, counted from 0, for error reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from canonflow.autodiff import vector_jacobian_product
from canonflow.validation import check_phase_space, check_positive_int, check_step_size

__all__ = [
    "ConvergenceError",
    "Hamiltonian",
    "HamiltonianGradient",
    "Integrator",
    "Method",
    "SplitStepFunction",
    "StepFunction",
    "StepSize",
    "check_conservative",
    "check_integrator_input",
    "has_separable_parts",
    "integrate",
    "integrate_times",
]

Hamiltonian = Callable[[torch.Tensor], torch.Tensor]
"""``H(x) -> (B,)`` for phase-space batches ``x`` of shape ``(B, 2n)`` laid out ``[q, p]``."""

StepSize = float | torch.Tensor
"""A step size ``h``: a float or a 0-dim tensor (which then receives gradients)."""


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


def check_integrator_input(
    hamiltonian: object, x0: object, step_size: object, steps: object, who: str, needs_separable: bool
) -> None:
    """Raise a ``TypeError``/``ValueError`` naming ``who`` unless the arguments of an integrator are valid.

    ``hamiltonian`` callable (and not marked ``separable = False`` when ``needs_separable``), ``x0`` a finite
    floating ``(B, 2n)`` tensor, ``step_size`` a finite non-zero float or scalar tensor, ``steps`` a positive int.
    """
    if not callable(hamiltonian):
        raise TypeError(f"{who}: expected a callable Hamiltonian H(x) -> (B,), got {type(hamiltonian).__name__}")
    if needs_separable and getattr(hamiltonian, "separable", True) is False:
        raise ValueError(
            f"{who}: this explicit splitting method needs a separable Hamiltonian H = T(p) + V(q), but the given "
            f"Hamiltonian has separable=False; use implicit_midpoint (symplectic) or rk4 instead"
        )
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"{who}: expected x0 to be a torch.Tensor of shape (B, 2n), got {type(x0).__name__}")
    if x0.dim() != 2 or x0.shape[-1] == 0 or x0.shape[-1] % 2 != 0:
        raise ValueError(f"{who}: expected x0 of shape (B, 2n) laid out [q, p], got shape {tuple(x0.shape)}")
    check_phase_space(x0, x0.shape[-1] // 2, who)
    check_step_size(step_size, who)
    check_positive_int(steps, "steps", who)


def check_conservative(hamiltonian: object, who: str) -> None:
    """Raise a ``ValueError`` naming ``who`` if ``hamiltonian`` carries a friction ``damping`` (not ``None``):
    a conservative integrator of ``ẋ = Ω∇H`` would silently drop it."""
    if getattr(hamiltonian, "damping", None) is not None:
        raise ValueError(
            f"{who}: the Hamiltonian has a damping (ẋ = Ω∇H − γ(0, p)), which this conservative integrator would "
            f"ignore; use conformal_leapfrog (separable H) or conformal_midpoint"
        )


class HamiltonianGradient:
    """``x ↦ ∇H(x) = [∂H/∂q, ∂H/∂p]`` of shape ``(B, 2n)``, and the vector field ``Ω∇H = [∂H/∂p, −∂H/∂q]``.

    The gradient comes from the Hamiltonian's method ``gradient(x)`` if it has one (an analytic gradient makes
    long runs of simple systems much faster), else from autograd (``vector_jacobian_product``), which keeps
    the graph when grad mode is on and builds none under ``torch.no_grad()``. ``who`` names the integrator
    in errors (a Hamiltonian that does not map ``(B, 2n)`` to ``(B,)``).
    """

    def __init__(self, hamiltonian: Hamiltonian, who: str) -> None:
        self.hamiltonian = hamiltonian
        self.who = who
        analytic = getattr(hamiltonian, "gradient", None)
        self.analytic = analytic if callable(analytic) else None
        self.parts = self.analytic is None and has_separable_parts(hamiltonian)
        gathered = getattr(hamiltonian, "part_gradients", None)
        self.part_gradients = gathered() if self.parts and callable(gathered) else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.analytic is not None:
            return self._checked(self.analytic(x), x, "gradient(x)")
        return vector_jacobian_product(self._scalar, x, x.new_ones(x.shape[0]), who=self.who)

    def _scalar(self, y: torch.Tensor) -> torch.Tensor:
        value = self.hamiltonian(y)
        if not isinstance(value, torch.Tensor) or value.shape != y.shape[:1]:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{self.who}: the Hamiltonian must map (B, 2n) to (B,) = ({y.shape[0]},), got {shape}")
        return value

    def field(self, x: torch.Tensor) -> torch.Tensor:
        """Hamilton's equations ``ẋ = Ω∇H(x) = (∂H/∂p, −∂H/∂q)``, shape ``(B, 2n)``."""
        gradient = self(x)
        n = gradient.shape[-1] // 2
        return torch.cat([gradient[..., n:], -gradient[..., :n]], dim=-1)

    def position_gradient(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``∂H/∂q`` at ``(q, p)``, shape ``(B, n)``: ``∂V/∂q(q)`` alone for a Hamiltonian with separable parts
        (:func:`has_separable_parts`), else the ``q`` half of the full gradient."""
        if self.part_gradients is not None:
            return self._checked(self.part_gradients[1](q), q, "part_gradients()[1] (∂V/∂q)")
        if self.parts:
            return self._part(self.hamiltonian.potential, q)
        return self(torch.cat([q, p], -1))[:, : q.shape[-1]]

    def momentum_gradient(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``∂H/∂p`` at ``(q, p)``, shape ``(B, n)``: ``∂K/∂p(p)`` alone for a Hamiltonian with separable parts
        (:func:`has_separable_parts`), else the ``p`` half of the full gradient."""
        if self.part_gradients is not None:
            return self._checked(self.part_gradients[0](p), p, "part_gradients()[0] (∂K/∂p)")
        if self.parts:
            return self._part(self.hamiltonian.kinetic, p)
        return self(torch.cat([q, p], -1))[:, q.shape[-1] :]

    def _checked(self, grad: torch.Tensor, z: torch.Tensor, name: str) -> torch.Tensor:
        """``grad``, after checking that the Hamiltonian's ``name(z)`` returned the shape of ``z``."""
        if grad.shape != z.shape:
            raise ValueError(
                f"{self.who}: the Hamiltonian's {name} must return the shape of its input {tuple(z.shape)}, "
                f"got {tuple(grad.shape)}"
            )
        return grad

    def _part(self, energy: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """``∇energy(z)`` of a half-width ``z`` ``(B, n)`` by autograd (one network, not both)."""

        def scalar(y: torch.Tensor) -> torch.Tensor:
            value = energy(y)
            if not isinstance(value, torch.Tensor) or value.shape != y.shape[:1]:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"{self.who}: kinetic(p) and potential(q) must map (B, n) to (B,), got {shape}")
            return value

        return vector_jacobian_product(scalar, z, z.new_ones(z.shape[0]), who=self.who)


def has_separable_parts(hamiltonian: object) -> bool:
    """Whether ``hamiltonian`` declares ``H(q, p) = K(p) + V(q)`` with its parts callable on their own.

    That is an attribute ``separable_parts`` that is ``True`` and methods ``kinetic(p)`` and ``potential(q)``,
    ``(B, n) -> (B,)``, whose sum is ``H`` (e.g. ``canonflow.hamiltonian_learning.HamiltonianNet(separable=True)``).
    The splitting methods then take ``∂H/∂q = ∂V/∂q`` and ``∂H/∂p = ∂K/∂p`` from one part each instead of the
    full gradient of ``H`` — for a learned ``K_θ + V_θ`` half the network evaluations per kick and drift. If it also
    has a method ``part_gradients()`` returning the functions ``(p ↦ ∂K/∂p, q ↦ ∂V/∂q)`` (``(B, n) -> (B, n)``,
    e.g. the closed-form gradients of a ``HamiltonianNet``), ``HamiltonianGradient`` calls it once per integration
    and uses those functions instead of autograd on ``kinetic`` and ``potential``.
    """
    return (
        getattr(hamiltonian, "separable_parts", False) is True
        and callable(getattr(hamiltonian, "kinetic", None))
        and callable(getattr(hamiltonian, "potential", None))
    )


StepFunction = Callable[..., tuple[torch.Tensor, Any]]
"""``step(gradient, x, h, carry, k, **options) -> (x', carry')``: one step of size ``h`` (see the module doc)."""

SplitStepFunction = Callable[..., tuple[torch.Tensor, torch.Tensor, Any]]
"""``split_step(gradient, q, p, h, carry, k, **options) -> (q', p', carry')``: a step on the halves ``q``, ``p``
(``(B, n)`` each) of the state ``x = [q, p]``; see ``Method.split_step``."""


@dataclass(frozen=True)
class Method:
    """A one-step method ``Φ_h`` for ``ẋ = Ω∇H(x)``: its step function and its properties.

    Attributes:
        name: the registry name, used in error messages.
        order: the global error order ``p`` (error ``O(hᵖ)`` at a fixed final time).
        step: the step function (see the module docstring).
        separable: the method needs a separable ``H = T(p) + V(q)`` (explicit splitting methods).
        symplectic: ``Φ_h`` is a canonical map for every admissible ``H``.
        symmetric: ``Φ_{−h} = Φ_h⁻¹`` (time reversible).
        dissipative: the method integrates the damped equations ``ẋ = Ω∇H(x) − γ (0, p)`` with the friction
            ``γ ≥ 0`` of ``hamiltonian.damping`` (see ``canonflow.integrators.conformal``); a conservative method
            refuses a Hamiltonian with a ``damping`` rather than ignore it.
        split_step: the same step on the halves of the state (``SplitStepFunction``), or ``None``. The explicit
            splitting methods update ``q`` and ``p`` separately; with it, ``integrate`` and ``integrate_times``
            keep ``q`` and ``p`` apart through the whole run and join them once at the end, instead of joining
            and splitting ``x = [q, p]`` at every step (the same values, fewer operations to record and
            differentiate).
    """

    name: str
    order: int
    step: StepFunction
    separable: bool
    symplectic: bool
    symmetric: bool
    dissipative: bool = False
    split_step: SplitStepFunction | None = None


def integrate(
    method: Method,
    hamiltonian: Hamiltonian,
    x0: torch.Tensor,
    step_size: StepSize,
    steps: int,
    *,
    trajectory: bool = False,
    **options: Any,
) -> torch.Tensor:
    """``steps`` steps of ``method`` with step ``h = step_size`` from ``x0`` (``(B, 2n)``).

    Returns the final state ``x_N`` of shape ``(B, 2n)``, or with ``trajectory=True`` the whole trajectory
    ``[x_0, x_1, …, x_N]`` of shape ``(steps + 1, B, 2n)``. ``options`` go to the step function. The inputs are
    checked once (``check_integrator_input``), with errors naming ``method.name``.
    """
    who = method.name
    check_integrator_input(hamiltonian, x0, step_size, steps, who, needs_separable=method.separable)
    if not method.dissipative:
        check_conservative(hamiltonian, who)
    gradient = HamiltonianGradient(hamiltonian, who)
    if method.split_step is not None:
        n = x0.shape[-1] // 2
        q, p, carry = x0[:, :n], x0[:, n:], None
        positions, momenta = [q], [p]
        for k in range(steps):
            q, p, carry = method.split_step(gradient, q, p, step_size, carry, k, **options)
            if trajectory:
                positions.append(q)
                momenta.append(p)
        return torch.cat([torch.stack(positions), torch.stack(momenta)], -1) if trajectory else torch.cat([q, p], -1)
    x, carry = x0, None
    states = [x0]
    for k in range(steps):
        x, carry = method.step(gradient, x, step_size, carry, k, **options)
        if trajectory:
            states.append(x)
    return torch.stack(states) if trajectory else x


def integrate_times(
    method: Method,
    hamiltonian: Hamiltonian,
    x0: torch.Tensor,
    times: torch.Tensor,
    *,
    substeps: int = 1,
    **options: Any,
) -> torch.Tensor:
    """Integrate each row of ``x0`` (``(B, 2n)``) through its own sample times; return the states there.

    ``times`` ``(B, T)``: strictly increasing sample times of each row, ``x0[b]`` the state at ``times[b, 0]``. Each
    interval ``[t_{b,i}, t_{b,i+1}]`` is covered by ``substeps`` steps of ``method`` of the row's own size
    ``h_{b,i} = (t_{b,i+1} − t_{b,i}) / substeps`` (a ``(B, 1)`` step-size tensor: the rows advance together, each
    by its actual time steps). Returns ``(T, B, 2n)``, the states at the sample times (``[0]`` is ``x0``).
    ``options`` go to the step function. Differentiable like :func:`integrate`; errors name ``method.name``.
    """
    who = method.name
    if not isinstance(times, torch.Tensor) or times.dim() != 2 or times.shape[0] != getattr(x0, "shape", (None,))[0]:
        shape = tuple(times.shape) if isinstance(times, torch.Tensor) else type(times).__name__
        raise ValueError(f"{who}: expected times of shape (B, T) with B = len(x0), got {shape}")
    if times.shape[1] < 2:
        raise ValueError(f"{who}: expected at least 2 sample times per row, got {times.shape[1]}")
    steps = (times[:, 1:] - times[:, :-1]).to(x0.dtype) / check_positive_int(substeps, "substeps", who)
    if not bool(torch.isfinite(steps).all()) or not bool((steps > 0).all()):
        raise ValueError(f"{who}: expected strictly increasing, finite times in every row")
    check_integrator_input(hamiltonian, x0, 1.0, 1, who, needs_separable=method.separable)
    if not method.dissipative:
        check_conservative(hamiltonian, who)
    gradient = HamiltonianGradient(hamiltonian, who)
    if method.split_step is not None:
        n = x0.shape[-1] // 2
        q, p, carry, k = x0[:, :n], x0[:, n:], None, 0
        positions, momenta = [q], [p]
        for i in range(steps.shape[1]):
            h = steps[:, i : i + 1]
            for _ in range(substeps):
                q, p, carry = method.split_step(gradient, q, p, h, carry, k, **options)
                k += 1
            positions.append(q)
            momenta.append(p)
        return torch.cat([torch.stack(positions), torch.stack(momenta)], -1)
    x, carry, k = x0, None, 0
    states = [x0]
    for i in range(steps.shape[1]):
        h = steps[:, i : i + 1]
        for _ in range(substeps):
            x, carry = method.step(gradient, x, h, carry, k, **options)
            k += 1
        states.append(x)
    return torch.stack(states)
