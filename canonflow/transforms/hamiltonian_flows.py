"""Hamiltonian-flow layers: the time-``Lε`` map of a learned Hamiltonian, discretised symplectically.

A symplectic integrator applied to any Hamiltonian ``H_θ`` is an exact canonical map of phase space, whatever
the discretisation error with respect to the true flow of ``H_θ``; so ``L`` integrator steps form a canonical
layer with ``log|det J| = 0``. ``LeapfrogFlow`` uses explicit leapfrog on a separable ``H_θ = K_θ(p) + V_θ(q)``;
``ImplicitMidpointFlow`` uses the implicit midpoint rule on a general ``H_θ(q, p)`` and can compute gradients
with a constant-memory discrete adjoint. In both, ``forward`` (data -> latent) runs ``L`` steps with step
``+ε`` and ``inverse`` (latent -> data) runs ``L`` steps with ``-ε``; both integrators are symmetric, so the
two are inverse to each other (exactly for leapfrog, to the solver tolerance for implicit midpoint).

The adjoint machinery is also available as a function, ``implicit_midpoint_adjoint(H, x0, h, steps,
trajectory=...)``, for use outside the layer (e.g. trajectory matching in ``canonflow.hamiltonian_learning``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable

from canonflow.integrators import (
    ConvergenceError,
    check_integrator_input,
    effective_tolerance,
    implicit_midpoint_step,
)
from canonflow.nn import MLP, GradientField
from canonflow.phase_space import hamiltonian_vector_field, join, split
from canonflow.transforms.base import SymplecticTransform
from canonflow.validation import check_positive_int

__all__ = ["LeapfrogFlow", "ImplicitMidpointFlow", "implicit_midpoint_adjoint"]


def _check_step_size(step_size: object, who: str) -> float:
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)):
        raise TypeError(f"{who}: expected step_size to be a positive float, got {step_size!r}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"{who}: expected step_size to be a positive finite float, got {step_size}")
    return float(step_size)


class LeapfrogFlow(SymplecticTransform):
    """``L`` leapfrog steps of a learned separable Hamiltonian ``H_θ(q, p) = K_θ(p) + V_θ(q)``; ``(B, 2n) -> (B, 2n)``.

    ``forward`` (data -> latent) applies ``L`` times the kick-drift-kick step

        ``p ← p - ε/2 ∇V(q)``,  ``q ← q + ε ∇K(p)``,  ``p ← p - ε/2 ∇V(q)``,

    each sub-step a generating-function shear (``∇V`` and ``∇K`` taken by autograd with
    ``canonflow.nn.GradientField``), so the map is exactly canonical for any parameters. ``inverse``
    (latent -> data) runs the same steps with ``-ε``, which undoes them exactly to round-off. The step size
    ``ε = exp(log_step_size)`` is learnable and always positive. Half kicks of consecutive steps share one
    evaluation of ``∇V``: ``L`` evaluations of ``∇K`` and ``L + 1`` of ``∇V`` per call.

    ``kinetic`` and ``potential`` are scalar networks ``(B, n) -> (B,)`` (or ``(B, 1)``); by default
    ``canonflow.nn.MLP(n, 1, hidden, depth, zero_init=True, output_bias=False)`` (a constant has no gradient),
    so the layer starts as the identity map.
    """

    def __init__(
        self,
        n: int,
        kinetic: nn.Module | None = None,
        potential: nn.Module | None = None,
        steps: int = 4,
        step_size: float = 0.1,
        *,
        hidden: int = 32,
        depth: int = 2,
    ) -> None:
        super().__init__(n)
        who = type(self).__name__
        self.steps = check_positive_int(steps, "steps", who)
        step_size = _check_step_size(step_size, who)
        self.log_step_size = nn.Parameter(torch.tensor(math.log(step_size)))
        kinetic = MLP(n, 1, hidden, depth, zero_init=True, output_bias=False) if kinetic is None else kinetic
        potential = MLP(n, 1, hidden, depth, zero_init=True, output_bias=False) if potential is None else potential
        self.kinetic_gradient = GradientField(kinetic, n)
        self.potential_gradient = GradientField(potential, n)

    @property
    def step_size(self) -> torch.Tensor:
        """The step size ``ε = exp(log_step_size) > 0`` (a 0-dim tensor)."""
        return self.log_step_size.exp()

    def _run(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        dv = self.potential_gradient(q)
        for _ in range(self.steps):
            p = p - 0.5 * h * dv
            q = q + h * self.kinetic_gradient(p)
            dv = self.potential_gradient(q)
            p = p - 0.5 * h * dv
        return join(q, p)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, self.step_size)

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, -self.step_size)

    def extra_repr(self) -> str:
        return f"n={self.n}, steps={self.steps}"


StageLoss = Callable[[int, torch.Tensor], "torch.Tensor | None"]
"""``loss(k, x_k) -> scalar tensor`` (or ``None`` for no term) of the state after step ``k`` (``x_0`` is ``k = 0``)."""


class _MidpointSolver:
    """``steps`` implicit-midpoint steps of ``f = Ω∇H`` with given tolerances; records the largest residual."""

    def __init__(
        self,
        hamiltonian: Callable[[torch.Tensor], torch.Tensor],
        params: tuple[torch.Tensor, ...],
        steps: int,
        tol: float,
        max_iter: int,
        who: str,
        loss: StageLoss | None = None,
    ) -> None:
        self.hamiltonian = hamiltonian
        self.params = params
        self.steps = steps
        self.tol = tol
        self.max_iter = max_iter
        self.who = who
        self.loss = loss
        self.last_residual = 0.0
        self.final_state: torch.Tensor | None = None

    def field(self, x: torch.Tensor) -> torch.Tensor:
        return hamiltonian_vector_field(self.hamiltonian, x)

    def step(self, x: torch.Tensor, h: torch.Tensor, index: int) -> torch.Tensor:
        y, residual = implicit_midpoint_step(
            self.field, x, h, tol=self.tol, max_iter=self.max_iter, who=self.who, step=index
        )
        self.last_residual = max(self.last_residual, residual)
        return y

    def solve(self, x: torch.Tensor, h: torch.Tensor, output: str = "final") -> torch.Tensor:
        """``output``: ``"final"`` -> ``x_L`` ``(B, 2n)``; ``"trajectory"`` -> ``(steps + 1, B, 2n)``;
        ``"loss"`` -> ``Σ_k loss(k, x_k)``, a scalar, keeping one state at a time."""
        self.last_residual = 0.0
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
        solver: _MidpointSolver,
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
        solver: _MidpointSolver = ctx.solver
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
        for k in reversed(range(solver.steps)):
            if output == "trajectory":
                x_prev = saved[k]
            else:
                with torch.no_grad():
                    x_prev = implicit_midpoint_step(
                        solver.field, x_next, -h, tol=solver.tol, max_iter=solver.max_iter, who=solver.who, step=k
                    )[0]
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
    hamiltonian: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    step_size: float | torch.Tensor,
    steps: int,
    *,
    trajectory: bool = False,
    loss: StageLoss | None = None,
    tol: float = 1e-12,
    max_iter: int = 100,
    parameters: Iterable[torch.Tensor] | None = None,
) -> torch.Tensor:
    """``canonflow.integrators.implicit_midpoint`` with constant-memory discrete-adjoint gradients.

    Runs ``steps`` steps ``x' = x + h Ω∇H((x + x')/2)`` from ``x0`` (``(B, 2n)``) and returns ``x_L``
    (``(B, 2n)``) or, with ``trajectory=True``, ``[x_0, ..., x_L]`` (``(steps + 1, B, 2n)``); the values equal
    those of ``implicit_midpoint`` with the same ``tol`` and ``max_iter``. With ``loss`` — a callable
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
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"{who}: expected a positive finite tol, got {tol!r}")
    check_positive_int(max_iter, "max_iter", who)
    if loss is not None and (trajectory or not callable(loss)):
        raise ValueError(f"{who}: loss must be a callable loss(k, x_k) and cannot be combined with trajectory=True")
    if parameters is None:
        parameters = hamiltonian.parameters() if isinstance(hamiltonian, nn.Module) else ()
    params = tuple(parameters)
    h = torch.as_tensor(step_size, dtype=x0.dtype, device=x0.device)
    solver = _MidpointSolver(hamiltonian, params, steps, float(tol), max_iter, who, loss)
    output = "loss" if loss is not None else "trajectory" if trajectory else "final"
    if torch.is_grad_enabled():
        return _MidpointAdjoint.apply(solver, output, x0, h, *params)
    return solver.solve(x0, h, output)


class ImplicitMidpointFlow(SymplecticTransform):
    """``L`` implicit-midpoint steps of a learned, possibly non-separable ``H_θ(q, p)``; ``(B, 2n) -> (B, 2n)``.

    ``forward`` (data -> latent) applies ``L`` times the step ``x' = x + ε Ω∇H_θ((x + x')/2)``, solved by an
    explicit RK2 predictor and a fixed-point corrector (``canonflow.integrators.implicit_midpoint_step``)
    to max-norm change ``≤ tol·(1 + max|x'|)``. The implicit midpoint rule is symplectic for every ``H``
    and symmetric, so ``inverse`` (latent -> data) solves the same steps with ``-ε``; the round trip is exact
    to the solver tolerance. A failed solve raises ``canonflow.integrators.ConvergenceError``; the largest
    residual of the last call's solves is kept in ``last_residual``. ``ε = exp(log_step_size)`` is learnable.
    The fixed-point iteration contracts when ``ε‖∂(Ω∇H)/∂x‖/2 < 1``.

    With ``adjoint=False`` gradients come from backpropagation through the converged fixed-point
    iterations (memory ``O(L · iterations)``). With ``adjoint=True`` they come from the discrete adjoint of
    the same integrator (a custom ``torch.autograd.Function``, see ``_MidpointAdjoint``): only the endpoint
    is stored, earlier states are reconstructed by solving steps backward, and per step the linear system
    ``(I - ε/2 J_f(m))ᵀ μ = λ`` is solved by fixed-point iteration — memory ``O(1)`` in ``L``. The adjoint
    delivers gradients to the input, to ``log_step_size`` and to ``hamiltonian.parameters()``, and supports
    first-order differentiation only.

    ``hamiltonian`` maps ``(B, 2n) -> (B,)``; by default ``canonflow.nn.MLP(2n, 1, hidden, depth,
    zero_init=True)`` without output bias (a constant has no gradient), so the layer starts as the identity.
    """

    def __init__(
        self,
        n: int,
        hamiltonian: nn.Module | None = None,
        steps: int = 4,
        step_size: float = 0.1,
        adjoint: bool = False,
        tol: float = 1e-12,
        max_iter: int = 100,
        *,
        hidden: int = 32,
        depth: int = 2,
    ) -> None:
        super().__init__(n)
        who = type(self).__name__
        self.steps = check_positive_int(steps, "steps", who)
        self.max_iter = check_positive_int(max_iter, "max_iter", who)
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"{who}: expected tol to be a positive finite float, got {tol!r}")
        self.tol = float(tol)
        self.adjoint = bool(adjoint)
        step_size = _check_step_size(step_size, who)
        self.log_step_size = nn.Parameter(torch.tensor(math.log(step_size)))
        self.hamiltonian = (
            MLP(2 * n, 1, hidden, depth, zero_init=True, output_bias=False) if hamiltonian is None else hamiltonian
        )
        self.last_residual: float | None = None

    @property
    def step_size(self) -> torch.Tensor:
        """The step size ``ε = exp(log_step_size) > 0`` (a 0-dim tensor)."""
        return self.log_step_size.exp()

    def _run(self, x: torch.Tensor, h: torch.Tensor, direction: str) -> torch.Tensor:
        params = tuple(self.hamiltonian.parameters())
        who = f"{type(self).__name__}.{direction}"
        solver = _MidpointSolver(self.hamiltonian, params, self.steps, self.tol, self.max_iter, who)
        if self.adjoint and torch.is_grad_enabled():
            y = _MidpointAdjoint.apply(solver, "final", x, h, *params)
        else:
            y = solver.solve(x, h)
        self.last_residual = solver.last_residual
        return y

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, self.step_size, "forward")

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, -self.step_size, "inverse")

    def extra_repr(self) -> str:
        return f"n={self.n}, steps={self.steps}, adjoint={self.adjoint}, tol={self.tol:g}, max_iter={self.max_iter}"
