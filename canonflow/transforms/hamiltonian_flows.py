"""Hamiltonian-flow layers: the time-``Lε`` map of a learned Hamiltonian, discretised symplectically.

A symplectic integrator applied to any Hamiltonian ``H_θ`` is an exact canonical map of phase space, whatever
the discretisation error with respect to the true flow of ``H_θ``; so ``L`` integrator steps form a canonical
layer with ``log|det J| = 0``. ``LeapfrogFlow`` uses explicit leapfrog on a separable ``H_θ = K_θ(p) + V_θ(q)``;
``ImplicitMidpointFlow`` uses the implicit midpoint rule on a general ``H_θ(q, p)`` and can compute gradients
with a constant-memory discrete adjoint. In both, ``forward`` (data -> latent) runs ``L`` steps with step
``+ε`` and ``inverse`` (latent -> data) runs ``L`` steps with ``-ε``; both integrators are symmetric, so the
two are inverse to each other (exactly for leapfrog, to the solver tolerance for implicit midpoint).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable

from canonflow.integrators import ConvergenceError, _effective_tol, implicit_midpoint_step
from canonflow.nn import MLP, GradientField
from canonflow.phase_space import hamiltonian_vector_field, join, split
from canonflow.transforms.base import SymplecticTransform
from canonflow.validation import check_positive_int

__all__ = ["LeapfrogFlow", "ImplicitMidpointFlow"]


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


class _MidpointSolver:
    """``L`` implicit-midpoint steps of ``f = Ω∇H`` with a layer's tolerances; records the largest residual."""

    def __init__(self, layer: ImplicitMidpointFlow, who: str) -> None:
        self.layer = layer
        self.who = who
        self.params = tuple(layer.hamiltonian.parameters())

    def field(self, x: torch.Tensor) -> torch.Tensor:
        return hamiltonian_vector_field(self.layer.hamiltonian, x)

    def step(self, x: torch.Tensor, h: torch.Tensor, index: int) -> torch.Tensor:
        layer = self.layer
        y, residual = implicit_midpoint_step(
            self.field, x, h, tol=layer.tol, max_iter=layer.max_iter, who=self.who, step=index
        )
        layer.last_residual = max(layer.last_residual or 0.0, residual)
        return y

    def solve(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        self.layer.last_residual = 0.0
        for k in range(self.layer.steps):
            x = self.step(x, h, k)
        return x


class _MidpointAdjoint(torch.autograd.Function):
    """``x_L = Φ_h^L(x_0)`` whose backward is the discrete adjoint of the implicit midpoint rule.

    Forward stores only ``x_L``. Backward walks the steps in reverse; step ``k`` (``x → x'``, midpoint
    ``m = (x + x')/2``, ``f = Ω∇H_θ``) first reconstructs ``x`` from ``x'`` by solving the step with ``-h``,
    then, with ``λ = ∂L/∂x'``, solves ``(I - h/2 J_f(m))ᵀ μ = λ`` by the fixed-point iteration
    ``μ ← λ + h/2 J_f(m)ᵀ μ`` (vector-Jacobian products), and sets ``∂L/∂x = (I + h/2 J_f(m))ᵀ μ``,
    ``∂L/∂θ += h (∂f/∂θ)ᵀ μ``, ``∂L/∂h += μᵀ f(m)``. This follows from differentiating
    ``x' = x + h f(m)``: ``(I - h/2 J) dx' = (I + h/2 J) dx + h ∂f/∂θ dθ + f dh``.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, solver: _MidpointSolver, x0: torch.Tensor, h: torch.Tensor, *params: torch.Tensor
    ) -> torch.Tensor:
        x = solver.solve(x0, h)
        ctx.solver = solver
        ctx.save_for_backward(x, h)
        return x

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        solver: _MidpointSolver = ctx.solver
        layer = solver.layer
        x_next, h = (t.detach() for t in ctx.saved_tensors)
        params = solver.params
        wanted = [i for i, p in enumerate(params) if ctx.needs_input_grad[3 + i]]
        grad_params: list[torch.Tensor | None] = [None] * len(params)
        for i in wanted:
            grad_params[i] = torch.zeros_like(params[i])
        grad_h = torch.zeros_like(h)
        lam = grad_output.detach()
        limit = _effective_tol(layer.tol, lam.dtype)
        for k in reversed(range(layer.steps)):
            with torch.no_grad():
                x_prev = implicit_midpoint_step(
                    solver.field, x_next, -h, tol=layer.tol, max_iter=layer.max_iter, who=solver.who, step=k
                )[0]
            with torch.enable_grad():
                m = (0.5 * (x_prev + x_next)).requires_grad_(True)  # detached: a leaf of this step's graph
                fm = solver.field(m)
                mu = lam
                residual = math.inf
                for _ in range(layer.max_iter):
                    (jt_mu,) = torch.autograd.grad(fm, m, mu, retain_graph=True)
                    mu_next = lam + 0.5 * h * jt_mu
                    residual = (mu_next - mu).abs().max().item()
                    mu = mu_next
                    if residual <= limit * mu.abs().max().item():
                        break
                else:
                    raise ConvergenceError(
                        f"{solver.who}: the adjoint fixed-point iteration did not converge at step {k} after "
                        f"{layer.max_iter} iterations (residual {residual:.3e} > tol {limit:.1e} · max|μ|)",
                        residual=residual,
                        step=k,
                        iterations=layer.max_iter,
                    )
                inputs = (m, *(params[i] for i in wanted))
                grads = torch.autograd.grad(fm, inputs, mu, allow_unused=True)
            lam = mu + 0.5 * h * grads[0]
            grad_h = grad_h + (mu * fm.detach()).sum()
            for i, g in zip(wanted, grads[1:], strict=True):
                if g is not None:
                    grad_params[i] = grad_params[i] + h * g
            x_next = x_prev
        return None, lam, grad_h, *grad_params


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
        solver = _MidpointSolver(self, f"{type(self).__name__}.{direction}")
        if self.adjoint and torch.is_grad_enabled():
            return _MidpointAdjoint.apply(solver, x, h, *solver.params)
        return solver.solve(x, h)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, self.step_size, "forward")

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, -self.step_size, "inverse")

    def extra_repr(self) -> str:
        return f"n={self.n}, steps={self.steps}, adjoint={self.adjoint}, tol={self.tol:g}, max_iter={self.max_iter}"
