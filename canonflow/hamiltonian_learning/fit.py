"""``fit_hamiltonian``: train a Hamiltonian on observed trajectories with ``canonflow.training.train``.

The data are turned into rows once (pairs ``[x, ẋ]`` or windows, see ``canonflow.hamiltonian_learning.losses``);
each optimizer step draws a minibatch of rows with ``canonflow.batches.Batches`` from the generator that ``train``
owns, so a resumed run sees the same batches. ``base_steps`` first fits a ``HamiltonianNet``'s closed-form part
alone with the same loss and data, and starts the whole model from it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from canonflow.batches import Batches
from canonflow.data import TrajectoryData, TrajectoryRecord
from canonflow.hamiltonian_learning.losses import (
    DERIVATIVES,
    DerivativeLoss,
    WindowLoss,
    derivative_pairs,
    record_pairs,
    record_windows,
    windows,
)
from canonflow.hamiltonian_learning.model import HamiltonianNet, model_dtype
from canonflow.losses import Loss
from canonflow.training import TrainConfig, TrainResult, train
from canonflow.validation import (
    check_choice,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
    check_trajectories,
)

log = logging.getLogger(__name__)

__all__ = ["MODES", "fit_hamiltonian"]

MODES = ("derivative", "leapfrog", "implicit_midpoint")
"""The training modes of ``fit_hamiltonian``."""

_VALIDATION_ROWS = 4096


def _time_step(times: torch.Tensor, who: str) -> float:
    """The common spacing ``Δt`` of uniformly spaced ``times``: every interval within ``1e-6·Δt`` plus the rounding
    of the times themselves, ``4 ε max|t|`` (``ε`` the machine epsilon of their dtype: float32 times such as
    ``arange(m)·Δt`` are uniform to that)."""
    if times.shape[0] < 2:
        raise ValueError(f"{who}: need at least two time samples per trajectory, got {times.shape[0]}")
    steps = (times[1:] - times[:-1]).to(torch.float64)
    dt = float(steps.mean())
    rounding = 4.0 * torch.finfo(times.dtype).eps * float(times.abs().max())
    if not bool(((steps - dt).abs() <= 1e-6 * abs(dt) + rounding).all()):
        raise ValueError(
            f"{who}: the sample times must be uniformly spaced (trajectory matching needs one Δt); read irregular "
            f"times with canonflow.data.load_trajectories(..., record=True)"
        )
    return dt


def _observations(
    data: TrajectoryData | torch.Tensor, dt: float | None, n: int | None, dtype: torch.dtype, who: str
) -> tuple[torch.Tensor, float, torch.Tensor | None]:
    """``(states (num, T, 2n), Δt, exact derivatives or None)`` from ``data``, checked and cast to ``dtype``."""
    if dt is not None:
        dt = check_positive_float(dt, "dt", who)
    if isinstance(data, TrajectoryData):
        states, derivatives = data.states, data.derivatives
        data_dt = _time_step(data.times, who)
        if dt is not None and abs(dt - data_dt) > 1e-6 * data_dt:
            raise ValueError(f"{who}: dt={dt} contradicts the spacing {data_dt} of data.times; leave dt unset")
        dt = data_dt
    elif isinstance(data, torch.Tensor):
        states, derivatives = data, None
        if dt is None:
            raise ValueError(f"{who}: a tensor of trajectories needs dt (the sampling interval)")
    else:
        raise TypeError(
            f"{who}: expected data to be a TrajectoryData or a tensor (num, T, 2n), got {type(data).__name__}"
        )
    if n is None:  # a model without ``n``: any even width
        n = max(1, states.shape[-1] // 2) if states.dim() == 3 else 1
    check_trajectories(states, n, who)
    return states.to(dtype), dt, None if derivatives is None else derivatives.to(dtype)


def _record_rows(
    record: TrajectoryRecord, mode: str, window: int, adjoint: bool, derivatives: str, dtype: torch.dtype, who: str
) -> tuple[torch.Tensor, float | None]:
    """Rows of a measured record and their ``Δt`` (``None``: windows carrying their own times)."""
    record = record.to(dtype)
    if mode == "derivative":
        if derivatives == "exact":
            raise ValueError(
                f"{who}: a TrajectoryRecord has no exact derivatives; its derivatives are "
                f"{record.derivative_method!r} (choose the estimator when loading it)"
            )
        log.info("%s: derivative targets of the record: %s", who, record.derivative_method)
        return record_pairs(record, who), None
    rows = record_windows(record, window, who)
    if not adjoint:
        return rows, None
    times = rows[..., -1]
    step = float(times[0, 1])
    if not bool(((times[:, 1:] - times[:, :-1] - step).abs() <= 1e-6 * step + 8 * torch.finfo(dtype).eps).all()):
        raise ValueError(f"{who}: adjoint=True needs one sampling interval; the record's windows have irregular steps")
    return rows[..., :-1], step


def fit_hamiltonian(
    model: nn.Module,
    data: TrajectoryData | TrajectoryRecord | torch.Tensor,
    mode: str = "derivative",
    *,
    adjoint: bool = False,
    dt: float | None = None,
    derivatives: str = "finite_difference",
    window: int = 7,
    substeps: int = 1,
    batch_size: int | None = 256,
    config: TrainConfig | None = None,
    validation_data: TrajectoryData | torch.Tensor | None = None,
    tol: float = 1e-10,
    max_iter: int = 50,
    base_steps: int = 0,
    warm_start: bool = True,
) -> TrainResult:
    """Fit ``model`` (a Hamiltonian ``(B, 2n) -> (B,)``) to observed trajectories; return the ``TrainResult``.

    Args:
        model: the Hamiltonian to train in place, e.g. a ``HamiltonianNet``; data are cast to its dtype.
        data: a ``TrajectoryData`` (uniformly spaced ``times``), a tensor ``(num, T, 2n)`` of observed states, or a
            ``canonflow.data.TrajectoryRecord`` (measured: own times, gaps, unequal lengths). From a record,
            derivative fitting takes the record's given or estimated derivatives (``record.derivative_method``) and
            the trajectory modes take windows inside its gap-free segments, integrated with the actual steps (with
            ``adjoint=True`` the steps must be regular).
        mode: ``"derivative"`` (``DerivativeLoss``), ``"leapfrog"`` (``WindowLoss`` with leapfrog; needs
            ``model.separable``) or ``"implicit_midpoint"`` (``WindowLoss`` with the implicit midpoint rule).
        adjoint: with ``mode="implicit_midpoint"``, take gradients by the discrete adjoint (memory constant in
            the window length) instead of backpropagation.
        dt: the sampling interval ``Δt``; required for a tensor, taken from ``data.times`` otherwise.
        derivatives: derivative mode's targets: ``"finite_difference"`` (central differences of the observed,
            noisy states; for a record, its derivatives) or ``"exact"`` (``data.derivatives``, exact at the clean
            states; not for a record).
        window: ``k``, the number of observation intervals per window in trajectory modes.
        substeps: integrator steps per observation interval (step size ``Δt / substeps``).
        batch_size: rows (pairs or windows) per optimizer step, drawn uniformly with replacement from the
            generator ``train`` provides; ``None`` (or at least the number of rows) uses all of them every step.
        config: the ``canonflow.training.TrainConfig`` (steps, learning rate, schedule, checkpoints, …);
            default ``TrainConfig(steps=2000, lr=1e-3, progress=False)``.
        validation_data: held-out trajectories (same kind as ``data``); the loss on (at most 4096 evenly
            spaced rows of) them is the validation value, and the best weights are kept.
        tol, max_iter: tolerance and iteration cap of the implicit-midpoint fixed-point solves.
        warm_start: warm-start the implicit-midpoint solves from the extrapolated increments of the previous
            steps (``WindowLoss(warm_start=...)``); ``False``: every solve starts from the RK2 predictor.
        base_steps: with a ``HamiltonianNet`` that has a closed-form part (``quadratic=True`` or
            ``polynomial ≥ 1``), first fit that part alone — a ``depth=0`` copy of the model, same loss, data and
            ``config`` but ``base_steps`` steps and no checkpoint — and start the full model from it; the
            networks then learn the residual instead of competing with the closed-form part from the start.
            Skipped when ``config.resume`` finds a checkpoint (it holds the weights). ``0``: no such stage.

    A damped model (``HamiltonianNet(damping=True)``) is fitted with its friction: the derivative loss compares
    ``Ω∇H_θ − γ(0, p)`` with ``ẋ``, the trajectory modes integrate with ``conformal_leapfrog`` /
    ``conformal_midpoint`` (not with ``adjoint=True``), and ``γ`` is trained with the other parameters.

    Raises ``ValueError``/``TypeError`` naming ``fit_hamiltonian`` for malformed data (shape, NaN/Inf,
    ``dt ≤ 0``, non-uniform times of a ``TrajectoryData``, too few samples for the window) or incompatible options.
    """
    who = "fit_hamiltonian"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{who}: expected model to be a torch.nn.Module, got {type(model).__name__}")
    if mode not in MODES:
        raise ValueError(f"{who}: unknown mode {mode!r}; choose one of {list(MODES)}")
    if adjoint and mode != "implicit_midpoint":
        raise ValueError(f"{who}: adjoint=True is only available with mode='implicit_midpoint', got mode={mode!r}")
    if adjoint and getattr(model, "damping", None) is not None:
        raise ValueError(f"{who}: adjoint=True does not support a damped model; use adjoint=False")
    if mode == "leapfrog" and getattr(model, "separable", False) is not True:
        raise ValueError(
            f"{who}: mode='leapfrog' needs a separable Hamiltonian K(p) + V(q) (e.g. HamiltonianNet(separable=True)); "
            f"use mode='implicit_midpoint' for a non-separable one"
        )
    if config is not None and config.compile:
        raise ValueError(
            f"{who}: TrainConfig(compile=...) is not supported: the losses differentiate ∇H_θ, and torch.compile "
            f"(aot_autograd) does not support that double backward"
        )
    check_choice(derivatives, DERIVATIVES, "derivatives", who)
    check_positive_int(window, "window", who)
    check_positive_int(substeps, "substeps", who)
    check_positive_int(max_iter, "max_iter", who)
    check_non_negative_int(base_steps, "base_steps", who)
    if base_steps and not (isinstance(model, HamiltonianNet) and model.closed_form_parameters):
        raise ValueError(
            f"{who}: base_steps needs a HamiltonianNet with a closed-form part (quadratic=True or polynomial >= 1)"
        )
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size", who)
    tol = check_positive_float(tol, "tol", who)
    n = model.n if isinstance(getattr(model, "n", None), int) else None
    dtype = model_dtype(model)
    parameter = next(model.parameters(), None)
    device = torch.device("cpu") if parameter is None else parameter.device  # the rows go where the model is

    def rows(source: TrajectoryData | TrajectoryRecord | torch.Tensor) -> tuple[torch.Tensor, float | None]:
        if isinstance(source, TrajectoryRecord):
            if dt is not None:
                raise ValueError(f"{who}: a TrajectoryRecord has its own times; leave dt unset")
            if n is not None and source.n != n:
                raise ValueError(f"{who}: the record has n={source.n} degrees of freedom, the model n={n}")
            found, step = _record_rows(source, mode, window, adjoint, derivatives, dtype, who)
            return found.to(device), step
        states, step, exact = _observations(source, dt, n, dtype, who)
        if mode == "derivative":
            return derivative_pairs(states, step, exact, derivatives, who).to(device), step
        return windows(states, window, who).to(device), step

    train_rows, step = rows(data)
    if mode == "derivative":
        loss: Loss = DerivativeLoss()
    else:
        loss = WindowLoss(
            step, mode, substeps=substeps, adjoint=adjoint, tol=tol, max_iter=max_iter, warm_start=warm_start
        )
    validation_rows = None
    if validation_data is not None:
        validation_rows, validation_step = rows(validation_data)
        both = step is not None and validation_step is not None
        timed_differs = mode != "derivative" and (step is None) != (validation_step is None)
        if timed_differs or (both and abs(validation_step - step) > 1e-6 * step):
            raise ValueError(f"{who}: validation_data has Δt={validation_step}, data has Δt={step}")
        count = validation_rows.shape[0]
        keep = torch.linspace(0, count - 1, min(count, _VALIDATION_ROWS)).round().long()
        validation_rows = validation_rows[keep]
    batches = None
    if batch_size is not None and batch_size < train_rows.shape[0]:
        batches = Batches(train_rows, batch_size, who=who)

    def fit(target: nn.Module, stage: TrainConfig) -> TrainResult:
        """``train`` on ``loss(target, rows)`` with minibatches drawn from ``train``'s generator."""

        def loss_fn(generator: torch.Generator) -> torch.Tensor:
            return loss(target, train_rows if batches is None else batches.draw(generator))

        def validate() -> float:
            return float(loss(target, validation_rows))

        return train(target, loss_fn, stage, validate=None if validation_rows is None else validate)

    config = TrainConfig(steps=2000, lr=1e-3, progress=False) if config is None else config
    resuming = config.resume and config.checkpoint is not None and Path(config.checkpoint).is_file()
    if base_steps and not resuming:
        base = HamiltonianNet.from_config({**model.config(), "depth": 0}).to(next(model.parameters()).device)
        base.load_state_dict(model.state_dict(), strict=False)
        description = f"{config.description} (base)"
        fitted = fit(base, replace(config, steps=base_steps, checkpoint=None, resume=False, description=description))
        log.info("closed-form part fitted in %d steps, best validation %.4g", fitted.steps, fitted.best_validation)
        with torch.no_grad():
            for target, source in zip(model.closed_form_parameters, base.closed_form_parameters, strict=True):
                target.copy_(source)
            if model.damped:
                model.damping_root.copy_(base.damping_root)
    return fit(model, config)
