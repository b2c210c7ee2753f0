"""Hamiltonian-flow layers: the time-``Lε`` map of a learned Hamiltonian, discretised symplectically.

A symplectic integrator applied to any Hamiltonian ``H_θ`` is an exact canonical map of phase space, whatever
the discretisation error with respect to the true flow of ``H_θ``; so ``L`` integrator steps form a canonical
layer with ``log|det J| = 0``. ``LeapfrogFlow`` uses explicit leapfrog on a separable ``H_θ = K_θ(p) + V_θ(q)``;
``ImplicitMidpointFlow`` uses the implicit midpoint rule on a general ``H_θ(q, p)`` and can compute gradients
with a constant-memory discrete adjoint. In both, ``forward`` (data -> latent) runs ``L`` steps with step
``+ε`` and ``inverse`` (latent -> data) runs ``L`` steps with ``-ε``; both integrators are symmetric, so the
two are inverse to each other (exactly for leapfrog, to the solver tolerance for implicit midpoint).

The solver and its discrete adjoint live beside the integrator, in ``canonflow.integrators``
(``ImplicitMidpointSolver``, ``implicit_midpoint_adjoint``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from canonflow.integrators import ImplicitMidpointSolver
from canonflow.nn import MLP, GradientField
from canonflow.phase_space import join, split
from canonflow.transforms.base import SymplecticTransform
from canonflow.validation import check_positive_float, check_positive_int, check_step_size

__all__ = ["LeapfrogFlow", "ImplicitMidpointFlow"]


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
        step_size = check_step_size(step_size, who, positive=True)
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

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, self.step_size)

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, -self.step_size)

    def extra_repr(self) -> str:
        return f"n={self.n}, steps={self.steps}"


class ImplicitMidpointFlow(SymplecticTransform):
    """``L`` implicit-midpoint steps of a learned, possibly non-separable ``H_θ(q, p)``; ``(B, 2n) -> (B, 2n)``.

    ``forward`` (data -> latent) applies ``L`` times the step ``x' = x + ε Ω∇H_θ((x + x')/2)``, solved by an
    explicit RK2 predictor and a fixed-point corrector (``canonflow.integrators.ImplicitMidpointSolver``)
    to max-norm change ``≤ tol·(1 + max|x'|)``. The implicit midpoint rule is symplectic for every ``H``
    and symmetric, so ``inverse`` (latent -> data) solves the same steps with ``-ε``; the round trip is exact
    to the solver tolerance. A failed solve raises ``canonflow.integrators.ConvergenceError``; the largest
    residual of the last call's solves is kept in ``last_residual``. ``ε = exp(log_step_size)`` is learnable.
    The fixed-point iteration contracts when ``ε‖∂(Ω∇H)/∂x‖/2 < 1``.

    With ``adjoint=False`` gradients come from backpropagation through the converged fixed-point
    iterations (memory ``O(L · iterations)``). With ``adjoint=True`` they come from the discrete adjoint of
    the same integrator (``ImplicitMidpointSolver.run(..., adjoint=True)``, a custom autograd function): only
    the endpoint is stored, earlier states are reconstructed by solving steps backward, and per step the linear
    system ``(I - ε/2 J_f(m))ᵀ μ = λ`` is solved by fixed-point iteration — memory ``O(1)`` in ``L``. The adjoint
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
        self.tol = check_positive_float(tol, "tol", who)
        self.adjoint = bool(adjoint)
        step_size = check_step_size(step_size, who, positive=True)
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
        solver = ImplicitMidpointSolver(
            self.hamiltonian,
            self.steps,
            tol=self.tol,
            max_iter=self.max_iter,
            who=f"{type(self).__name__}.{direction}",
            parameters=self.hamiltonian.parameters(),
        )
        y = solver.run(x, h, adjoint=self.adjoint)
        self.last_residual = solver.last_residual
        return y

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, self.step_size, "forward")

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, -self.step_size, "inverse")

    def extra_repr(self) -> str:
        return f"n={self.n}, steps={self.steps}, adjoint={self.adjoint}, tol={self.tol:g}, max_iter={self.max_iter}"
