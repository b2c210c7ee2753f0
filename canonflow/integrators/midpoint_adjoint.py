"""Layers' implicit-midpoint solves and the discrete adjoint: gradients with one step's graph alive at a time.

:class:`ImplicitMidpointSolver` runs ``steps`` solves of :func:`~canonflow.integrators.midpoint.implicit_midpoint_step`
at fixed tolerances, with gradients by backpropagation (``solve``) or by the discrete adjoint of the rule
(``run(..., adjoint=True)``, for layers such as ``canonflow.transforms.ImplicitMidpointFlow``);
:func:`implicit_midpoint_adjoint` is the integrator with adjoint gradients.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable

from canonflow.integrators.base import (
    ConvergenceError,
    Hamiltonian,
    StepSize,
    check_conservative,
    check_integrator_input,
)
from canonflow.integrators.midpoint import (
    Increments,
    StageLoss,
    effective_tolerance,
    implicit_midpoint_step,
    next_increments,
    warm_start_guess,
)
from canonflow.phase_space import hamiltonian_vector_field
from canonflow.validation import check_positive_float, check_positive_int

__all__ = ["ImplicitMidpointSolver", "implicit_midpoint_adjoint"]


class ImplicitMidpointSolver:
    """``steps`` implicit-midpoint steps of ``f = Ω∇H`` (``hamiltonian_vector_field``) at fixed tolerances.

    ``solve`` runs them with gradients by backpropagation; ``run(..., adjoint=True)`` with gradients by the
    discrete adjoint (when grad mode is on). ``parameters`` are the tensors that receive adjoint gradients
    (typically ``hamiltonian.parameters()``); ``loss`` is the running loss of ``output="loss"``. After a
    call, ``last_residual`` is the largest fixed-point residual of its solves and ``final_state`` is ``x_L``.
    With ``warm_start`` each solve after the second of a run (forward, or the backward reconstruction of the
    adjoint) starts from the extrapolated increments (``warm_start_guess``) instead of the RK2 predictor.
    The inputs are not checked here (``implicit_midpoint_adjoint`` and the layers check them).
    """

    def __init__(
        self,
        hamiltonian: Hamiltonian,
        steps: int,
        *,
        tol: float,
        max_iter: int,
        who: str,
        parameters: Iterable[torch.Tensor] = (),
        loss: StageLoss | None = None,
        warm_start: bool = False,
    ) -> None:
        self.hamiltonian = hamiltonian
        self.warm_start = warm_start
        self.increments: Increments | None = None
        self.params = tuple(parameters)
        self.steps = steps
        self.tol = tol
        self.max_iter = max_iter
        self.who = who
        self.loss = loss
        self.last_residual = 0.0
        self.final_state: torch.Tensor | None = None

    def field(self, x: torch.Tensor) -> torch.Tensor:
        """``Ω∇H(x)``, shape ``(B, 2n)``."""
        return hamiltonian_vector_field(self.hamiltonian, x)

    def step(self, x: torch.Tensor, h: torch.Tensor, index: int) -> torch.Tensor:
        """The state one step of size ``h`` after ``x``; ``index`` is reported by a ``ConvergenceError``."""
        guess = warm_start_guess(x, self.increments) if self.warm_start else None
        y, residual = implicit_midpoint_step(
            self.field, x, h, tol=self.tol, max_iter=self.max_iter, who=self.who, step=index, guess=guess
        )
        self.last_residual = max(self.last_residual, residual)
        if self.warm_start:
            self.increments = next_increments(self.increments, x, y)
        return y

    def solve(self, x: torch.Tensor, h: torch.Tensor, output: str = "final") -> torch.Tensor:
        """``output``: ``"final"`` -> ``x_L`` ``(B, 2n)``; ``"trajectory"`` -> ``(steps + 1, B, 2n)``;
        ``"loss"`` -> ``Σ_k loss(k, x_k)``, a scalar, keeping one state at a time."""
        self.last_residual = 0.0
        self.increments = None
        states = [x]
        total = self._stage_loss(0, x) if output == "loss" else None
        for k in range(self.steps):
            x = self.step(x, h, k)
            if output == "trajectory":
                states.append(x)
            elif output == "loss":
                term = self._stage_loss(k + 1, x)
                total = term if total is None else total if term is None else total + term
        self.final_state = x
        if output == "loss":
            return x.new_zeros(()) if total is None else total
        return torch.stack(states) if output == "trajectory" else x

    def run(self, x: torch.Tensor, h: torch.Tensor, output: str = "final", *, adjoint: bool = False) -> torch.Tensor:
        """``solve(x, h, output)``, with the discrete adjoint as backward when ``adjoint`` and grad mode is on."""
        if adjoint and torch.is_grad_enabled():
            return _MidpointAdjoint.apply(self, output, x, h, *self.params)
        return self.solve(x, h, output)

    def _stage_loss(self, k: int, x: torch.Tensor) -> torch.Tensor | None:
        term = self.loss(k, x)
        if term is not None and (not isinstance(term, torch.Tensor) or term.numel() != 1):
            raise ValueError(f"{self.who}: loss(k, x_k) must return a scalar tensor or None, got {term!r}")
        return None if term is None else term.reshape(())

    def loss_gradient(self, k: int, x: torch.Tensor) -> torch.Tensor | None:
        """``∂loss(k, x)/∂x``, or ``None`` where the loss has no term (or does not depend on ``x``)."""
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            term = self._stage_loss(k, leaf)
            if term is None or not term.requires_grad:
                return None
            return torch.autograd.grad(term, leaf)[0]


class _MidpointAdjoint(torch.autograd.Function):
    """``x_L = Φ_h^L(x_0)``, the trajectory ``[x_0, ..., x_L]``, or a running loss ``Σ_k ℓ_k(x_k)``, with
    the discrete adjoint of the implicit midpoint rule as backward.

    Forward stores only ``x_L`` (with ``"trajectory"``: the returned trajectory itself, no extra tensor).
    Backward walks the steps in reverse; step ``k`` (``x → x'``, midpoint ``m = (x + x')/2``, ``f = Ω∇H_θ``)
    takes ``x`` from the stored trajectory or else reconstructs it from ``x'`` by solving the step with
    ``-h``, then, with ``λ = ∂L/∂x'``, solves ``(I - h/2 J_f(m))ᵀ μ = λ`` by the fixed-point iteration
    ``μ ← λ + h/2 J_f(m)ᵀ μ`` (vector-Jacobian products), and sets ``∂L/∂x = (I + h/2 J_f(m))ᵀ μ + g_k``,
    ``∂L/∂θ += h (∂f/∂θ)ᵀ μ``, ``∂L/∂h += μᵀ f(m)``, where ``g_k`` is the loss's direct gradient with respect
    to the state ``x_k`` (the incoming gradient of output ``k`` for ``"trajectory"``, ``∇ℓ_k(x_k)`` times
    the incoming scalar for ``"loss"``, zero for ``k < L`` with ``"final"``). This follows from
    differentiating ``x' = x + h f(m)``: ``(I - h/2 J) dx' = (I + h/2 J) dx + h ∂f/∂θ dθ + f dh``. Only the
    graph of one step is alive at a time, so memory does not grow with ``L`` (for ``"final"`` and ``"loss"``).
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        solver: ImplicitMidpointSolver,
        output: str,
        x0: torch.Tensor,
        h: torch.Tensor,
        *params: torch.Tensor,
    ) -> torch.Tensor:
        result = solver.solve(x0, h, output)
        ctx.solver = solver
        ctx.output = output
        ctx.save_for_backward(solver.final_state if output == "loss" else result, h)
        return result

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        solver: ImplicitMidpointSolver = ctx.solver
        output: str = ctx.output
        saved, h = (t.detach() for t in ctx.saved_tensors)
        x_next = saved[-1] if output == "trajectory" else saved
        params = solver.params
        wanted = [i for i, p in enumerate(params) if ctx.needs_input_grad[4 + i]]
        grad_params: list[torch.Tensor | None] = [None] * len(params)
        for i in wanted:
            grad_params[i] = torch.zeros_like(params[i])
        grad_h = torch.zeros_like(h)
        grad_output = grad_output.detach()

        def direct(k: int, x: torch.Tensor) -> torch.Tensor | None:
            """The loss's gradient with respect to state ``x_k`` itself."""
            if output == "trajectory":
                return grad_output[k]
            if output == "loss":
                g = solver.loss_gradient(k, x)
                return None if g is None else grad_output * g
            return grad_output if k == solver.steps else None

        lam = direct(solver.steps, x_next)
        lam = torch.zeros_like(x_next) if lam is None else lam
        limit = effective_tolerance(solver.tol, lam.dtype)
        solver.increments = None
        for k in reversed(range(solver.steps)):
            if output == "trajectory":
                x_prev = saved[k]
            else:
                with torch.no_grad():
                    x_prev = solver.step(x_next, -h, k)
            with torch.enable_grad():
                m = (0.5 * (x_prev + x_next)).requires_grad_(True)  # detached: a leaf of this step's graph
                fm = solver.field(m)
                mu = lam
                residual = math.inf
                for _ in range(solver.max_iter):
                    (jt_mu,) = torch.autograd.grad(fm, m, mu, retain_graph=True)
                    mu_next = lam + 0.5 * h * jt_mu
                    residual = (mu_next - mu).abs().max().item()
                    mu = mu_next
                    if residual <= limit * mu.abs().max().item():
                        break
                else:
                    raise ConvergenceError(
                        f"{solver.who}: the adjoint fixed-point iteration did not converge at step {k} after "
                        f"{solver.max_iter} iterations (residual {residual:.3e} > tol {limit:.1e} · max|μ|)",
                        residual=residual,
                        step=k,
                        iterations=solver.max_iter,
                    )
                inputs = (m, *(params[i] for i in wanted))
                grads = torch.autograd.grad(fm, inputs, mu, allow_unused=True)
            lam = mu + 0.5 * h * grads[0]
            extra = direct(k, x_prev)
            if extra is not None:
                lam = lam + extra
            grad_h = grad_h + (mu * fm.detach()).sum()
            for i, g in zip(wanted, grads[1:], strict=True):
                if g is not None:
                    grad_params[i] = grad_params[i] + h * g
            x_next = x_prev
        return None, None, lam, grad_h, *grad_params


def implicit_midpoint_adjoint(
    hamiltonian: Hamiltonian,
    x0: torch.Tensor,
    step_size: StepSize,
    steps: int,
    *,
    trajectory: bool = False,
    loss: StageLoss | None = None,
    tol: float = 1e-12,
    max_iter: int = 100,
    parameters: Iterable[torch.Tensor] | None = None,
    warm_start: bool = False,
) -> torch.Tensor:
    """``implicit_midpoint`` with constant-memory discrete-adjoint gradients.

    Runs ``steps`` steps ``x' = x + h Ω∇H((x + x')/2)`` from ``x0`` (``(B, 2n)``) and returns ``x_L``
    (``(B, 2n)``) or, with ``trajectory=True``, ``[x_0, ..., x_L]`` (``(steps + 1, B, 2n)``); the values equal
    those of ``implicit_midpoint`` with the same ``tol``, ``max_iter`` and ``warm_start`` (which also warm-starts
    the backward reconstruction of earlier states). With ``loss`` — a callable
    ``loss(k, x_k)`` returning a scalar tensor or ``None`` (no term) for the state after step ``k`` — it
    returns instead the running loss ``Σ_{k=0}^{L} loss(k, x_k)`` (a 0-dim tensor), computed keeping one
    state at a time; e.g. ``loss = lambda k, x: ((x - targets[k]) ** 2).mean()`` for trajectory matching.

    When grad mode is on, the backward pass is the discrete adjoint of the integrator (see
    ``_MidpointAdjoint``): the gradients equal those of backpropagation through the converged solves (to the
    solver tolerance), but only one step's graph is alive at a time, so memory is ``O(1)`` in ``steps``
    (with ``trajectory=True`` plus the returned ``O(steps)`` trajectory; with ``loss`` earlier states are
    reconstructed by solving backward, and nothing grows with ``steps``). Gradients reach ``x0``,
    ``step_size`` (if a tensor requiring grad) and ``parameters`` — by default ``hamiltonian.parameters()``
    when ``hamiltonian`` is an ``nn.Module``; other tensors that ``hamiltonian`` or ``loss`` close over
    receive none. First-order differentiation only. Under ``torch.no_grad()`` it is a plain solve.
    """
    who = "implicit_midpoint_adjoint"
    check_integrator_input(hamiltonian, x0, step_size, steps, who, needs_separable=False)
    check_conservative(hamiltonian, who)
    tol = check_positive_float(tol, "tol", who)
    check_positive_int(max_iter, "max_iter", who)
    if loss is not None and (trajectory or not callable(loss)):
        raise ValueError(f"{who}: loss must be a callable loss(k, x_k) and cannot be combined with trajectory=True")
    if parameters is None:
        parameters = hamiltonian.parameters() if isinstance(hamiltonian, nn.Module) else ()
    h = torch.as_tensor(step_size, dtype=x0.dtype, device=x0.device)
    solver = ImplicitMidpointSolver(
        hamiltonian,
        steps,
        tol=tol,
        max_iter=max_iter,
        who=who,
        parameters=parameters,
        loss=loss,
        warm_start=bool(warm_start),
    )
    output = "loss" if loss is not None else "trajectory" if trajectory else "final"
    return solver.run(x0, h, output, adjoint=True)
