"""Losses for learning a Hamiltonian ``H_θ`` from trajectories sampled every ``Δt``, and the samples they take.

Both are ``canonflow.losses.Loss`` values, called as ``loss(model, batch)`` on a batch of rows:

``DerivativeLoss`` (HNN, Greydanus et al. 2019), rows ``(B, 2, 2n)`` = ``[x, ẋ]`` from ``derivative_pairs``
    ``mean ‖Ω∇H_θ(x) − ẋ‖²``. The targets ``ẋ`` are the exact derivatives at the clean states
    (``derivatives="exact"``) or central finite differences ``(x_{t+1} − x_{t−1}) / (2Δt)`` of the observed
    states at the interior samples (``derivatives="finite_difference"``).

``WindowLoss`` (trajectory matching), rows ``(B, k + 1, 2n)`` = windows ``x_s, …, x_{s+k}`` from ``windows``
    integrate ``Φ`` from the observed (noisy) ``x_s`` and take ``mean_j ‖Φ^{j}(x_s) − x_{s+j}‖²`` over
    ``j = 1..k``, where ``Φ`` is ``substeps`` steps of size ``Δt / substeps`` of ``"leapfrog"`` (SRNN-style,
    Chen et al. 2020; separable ``H_θ = K_θ(p) + V_θ(q)`` only) or ``"implicit_midpoint"`` (Choudhary et al.
    2024; any ``H_θ``), with gradients by backpropagation through the integrator or, for the implicit midpoint
    rule with ``adjoint=True``, by its discrete adjoint (the loss accumulated state by state: memory does not
    grow with the window length). Leapfrog windows of a model that ``leapfrog_window_supported`` accepts (a tanh
    ``HamiltonianNet``) are integrated by ``leapfrog_window``, whose hand-written adjoint gives backpropagation's
    gradients to round-off with fewer operations.

Measured records (``canonflow.data.TrajectoryRecord``): ``record_pairs`` pairs every sample with its given or
estimated derivative; ``record_windows`` cuts windows inside the gap-free segments and carries each sample's time
in a last column, rows ``(B, k + 1, 2n + 1)``, which ``WindowLoss(None, ...)`` integrates with the actual steps
(``canonflow.integrators.integrate_times``: ``h_{b,j} = (t_{b,j+1} − t_{b,j}) / substeps``).

Damped models (``model.damping`` set, ``ẋ = Ω∇H_θ − γ(0, p)``): ``DerivativeLoss`` compares
``damped_vector_field`` with ``ẋ``; ``WindowLoss`` integrates with the conformally symplectic counterpart of its
integrator (``conformal_leapfrog``, ``conformal_midpoint``). The adjoint does not support damping.
"""

from __future__ import annotations

import torch
from torch import nn

from canonflow.data import TrajectoryRecord
from canonflow.hamiltonian_learning.leapfrog_adjoint import leapfrog_window, leapfrog_window_supported
from canonflow.integrators import (
    METHODS,
    damped_vector_field,
    implicit_midpoint_adjoint,
    integrate,
    integrate_times,
    resolve_damping,
)
from canonflow.losses import Loss
from canonflow.phase_space import hamiltonian_vector_field
from canonflow.validation import check_choice, check_positive_float, check_positive_int

__all__ = [
    "DERIVATIVES",
    "DerivativeLoss",
    "WINDOW_INTEGRATORS",
    "WindowLoss",
    "derivative_pairs",
    "record_pairs",
    "record_windows",
    "windows",
]

DERIVATIVES = ("finite_difference", "exact")
"""The targets of ``derivative_pairs``."""

WINDOW_INTEGRATORS = ("leapfrog", "implicit_midpoint")
"""The integrators of ``WindowLoss``."""


def derivative_pairs(
    states: torch.Tensor, dt: float, exact: torch.Tensor | None, derivatives: str, who: str
) -> torch.Tensor:
    """Rows ``[x, ẋ]`` of shape ``(M, 2, 2n)`` from trajectories ``states`` ``(num, T, 2n)`` sampled every ``dt``.

    ``derivatives="exact"`` pairs every state with ``exact`` (``(num, T, 2n)``, the derivatives at the clean
    states); ``"finite_difference"`` pairs the interior states ``x_t`` with ``(x_{t+1} − x_{t−1}) / (2Δt)``.
    """
    check_choice(derivatives, DERIVATIVES, "derivatives", who)
    if derivatives == "exact":
        if exact is None:
            raise ValueError(f"{who}: derivatives='exact' needs a TrajectoryData (with .derivatives), got a tensor")
        inputs, targets = states, exact
    else:
        if states.shape[1] < 3:
            raise ValueError(f"{who}: finite differences need at least 3 samples per trajectory")
        inputs, targets = states[:, 1:-1], (states[:, 2:] - states[:, :-2]) / (2.0 * dt)
    width = states.shape[-1]
    return torch.stack([inputs.reshape(-1, width), targets.reshape(-1, width)], dim=1)


def windows(states: torch.Tensor, window: int, who: str) -> torch.Tensor:
    """All overlapping windows ``x_s, …, x_{s+k}`` of ``k = window`` steps of ``states`` ``(num, T, 2n)``, as rows
    ``(M, k + 1, 2n)``."""
    if states.shape[1] < window + 1:
        raise ValueError(
            f"{who}: windows of {window} steps need at least {window + 1} samples per trajectory, got {states.shape[1]}"
        )
    rows = states.unfold(1, window + 1, 1)  # (num, T - k, 2n, k + 1)
    return rows.permute(0, 1, 3, 2).reshape(-1, window + 1, states.shape[-1])


def record_pairs(record: TrajectoryRecord, who: str) -> torch.Tensor:
    """Rows ``[x, ẋ]`` ``(M, 2, 2n)`` of every sample of ``record`` that has a derivative (given, or estimated on a
    segment long enough for ``record.derivative_method``)."""
    states = torch.cat(record.states)
    targets = torch.cat(record.derivatives)
    keep = torch.isfinite(targets).all(-1)
    if not bool(keep.any()):
        raise ValueError(f"{who}: the record has no derivative targets (every segment too short for the estimator)")
    return torch.stack([states[keep], targets[keep]], dim=1)


def record_windows(record: TrajectoryRecord, window: int, who: str) -> torch.Tensor:
    """All overlapping windows of ``k = window`` intervals inside the gap-free segments of ``record``, as rows
    ``(M, k + 1, 2n + 1)``: the states ``x_s, …, x_{s+k}`` and, in the last column, their times minus ``t_s``
    (in the record's dtype). Segments shorter than ``k + 1`` samples give none."""
    rows = []
    for times, states, _ in record.segments():
        if times.shape[0] < window + 1:
            continue
        offsets = times.unfold(0, window + 1, 1)  # (T - k, k + 1), float64
        offsets = (offsets - offsets[:, :1]).to(states.dtype)
        cut = states.unfold(0, window + 1, 1).transpose(1, 2)  # (T - k, k + 1, 2n)
        rows.append(torch.cat([cut, offsets[..., None]], dim=-1))
    if not rows:
        longest = max(t.shape[0] for t, _, _ in record.segments())
        raise ValueError(
            f"{who}: windows of {window} intervals need a gap-free segment of at least {window + 1} samples; the "
            f"record's longest has {longest} (lower window, or raise the record's max_gap)"
        )
    return torch.cat(rows)


class DerivativeLoss(Loss):
    """``mean ‖f_θ(x) − ẋ‖²`` over rows ``[x, ẋ]`` of shape ``(B, 2, 2n)`` (see ``derivative_pairs``), with
    ``f_θ = Ω∇H_θ`` (``damped_vector_field``, ``Ω∇H_θ − γ(0, p)``, for a model with a ``damping``)."""

    separable = True

    def __call__(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        if getattr(model, "damping", None) is None:
            field = hamiltonian_vector_field(model, batch[:, 0])
        else:
            field = damped_vector_field(model, batch[:, 0])
        return (field - batch[:, 1]).pow(2).mean()


class WindowLoss(Loss):
    """``mean_j ‖Φ^{j}(x_s) − x_{s+j}‖²`` over windows ``(B, k + 1, 2n)`` (see ``windows``), ``j = 1..k``.

    Args:
        dt: the sampling interval ``Δt`` of the windows; ``None``: the rows are ``(B, k + 1, 2n + 1)`` windows of
            ``record_windows`` with the sample times in the last column, integrated with their actual steps.
        integrator: ``"leapfrog"`` (a separable ``H_θ``) or ``"implicit_midpoint"`` (any ``H_θ``).
        substeps: integrator steps per interval, of size ``h = Δt / substeps``.
        adjoint: gradients by the implicit midpoint rule's discrete adjoint (``implicit_midpoint`` only).
        tol, max_iter: tolerance and iteration cap of the implicit-midpoint solves.
        warm_start: start each implicit-midpoint solve after a window's second step from the extrapolation of
            the last two increments instead of the RK2 predictor (``integrators.warm_start_guess``): the same
            solution to ``tol``, fewer evaluations of ``∇H_θ``.
    """

    separable = True

    def __init__(
        self,
        dt: float | None,
        integrator: str = "implicit_midpoint",
        *,
        substeps: int = 1,
        adjoint: bool = False,
        tol: float = 1e-10,
        max_iter: int = 50,
        warm_start: bool = True,
    ) -> None:
        who = type(self).__name__
        self.integrator = check_choice(integrator, WINDOW_INTEGRATORS, "integrator", who)
        if adjoint and integrator != "implicit_midpoint":
            raise ValueError(f"{who}: adjoint=True needs integrator='implicit_midpoint', got {integrator!r}")
        self.substeps = check_positive_int(substeps, "substeps", who)
        if dt is None and adjoint:
            raise ValueError(f"{who}: adjoint=True needs one sampling interval dt, not windows with their own times")
        self.step_size = None if dt is None else check_positive_float(dt, "dt", who) / substeps
        self.adjoint = bool(adjoint)
        self.tol = check_positive_float(tol, "tol", who)
        self.max_iter = check_positive_int(max_iter, "max_iter", who)
        if not isinstance(warm_start, bool):
            raise TypeError(f"{who}: expected warm_start to be a bool, got {warm_start!r}")
        self.warm_start = warm_start

    def __call__(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        h, substeps = self.step_size, self.substeps
        steps = (batch.shape[1] - 1) * substeps
        damped = getattr(model, "damping", None) is not None
        name = f"conformal_{'leapfrog' if self.integrator == 'leapfrog' else 'midpoint'}" if damped else self.integrator
        midpoint = {"tol": self.tol, "max_iter": self.max_iter, "warm_start": self.warm_start}
        options = {} if self.integrator == "leapfrog" else dict(midpoint)
        if damped:
            options["damping"] = resolve_damping(model, None, type(self).__name__)
        if h is None:  # rows with their times in the last column
            states = batch[..., :-1]
            path = integrate_times(METHODS[name], model, states[:, 0], batch[..., -1], substeps=substeps, **options)
            return (path[1:] - states[:, 1:].transpose(0, 1)).pow(2).mean()
        x0 = batch[:, 0]
        if self.adjoint:
            if damped:
                raise ValueError(f"{type(self).__name__}: adjoint=True does not support a damped model")
            count = batch[:, 1:].numel()

            def stage(step: int, x: torch.Tensor) -> torch.Tensor | None:
                if step == 0 or step % substeps:
                    return None
                return (x - batch[:, step // substeps]).pow(2).sum() / count

            return implicit_midpoint_adjoint(model, x0, h, steps, loss=stage, **midpoint)
        if name == "leapfrog" and leapfrog_window_supported(model):
            predicted = leapfrog_window(model, x0, h, steps, substeps)  # (k, B, 2n), by its discrete adjoint
        else:
            predicted = integrate(METHODS[name], model, x0, h, steps, trajectory=True, **options)[substeps::substeps]
        return (predicted - batch[:, 1:].transpose(0, 1)).pow(2).mean()
