"""Evaluating a learned model against a measured record, with no known system: rollouts over the observed times.

From the first observed state of every gap-free segment of a ``canonflow.data.TrajectoryRecord``, the learned
dynamics are integrated through that segment's observed times (``canonflow.integrators.integrate_times``, each
interval split into ``⌈Δt / max_step⌉`` equal steps) and compared with the observations: the trajectory error
``mean ‖x̂(t) − x(t)‖² / 2n`` and the energy error ``mean (E(x̂(t)) − E(x(t)))²`` over all samples after the first,
with an energy ``E`` of the caller's choice (a physical energy of the record such as ``½ω² + (g/l)(1 − cos θ)`` for a
pendulum, so that several models are compared on one scale; by default the model's own ``H_θ``).
``plot_record_rollout`` draws the record against the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from canonflow.data import TrajectoryRecord
from canonflow.hamiltonian_learning.model import model_dtype
from canonflow.integrators import METHODS, integrate_times
from canonflow.validation import check_energy, check_positive_float

__all__ = ["RecordRollout", "plot_record_rollout", "record_rollout"]


@dataclass
class RecordRollout:
    """Rollouts of a learned model from the observed start of each gap-free segment of a record.

    Attributes (one entry per segment of at least two samples, float64):
        labels: ``"<trajectory label>/<segment number>"``.
        times: the observed times ``(T_s,)``.
        observed: the observed states ``(T_s, 2n)``.
        predicted: the model's states at those times ``(T_s, 2n)`` (``predicted[0] = observed[0]``).
        observed_energy, predicted_energy: ``E`` along both, ``(T_s,)``.
        integrator: the integrator's name and step rule, for reports.
    """

    labels: list[str]
    times: list[torch.Tensor]
    observed: list[torch.Tensor]
    predicted: list[torch.Tensor]
    observed_energy: list[torch.Tensor]
    predicted_energy: list[torch.Tensor]
    integrator: str

    @property
    def state_mse(self) -> float:
        """``Σ_s Σ_{t>0} ‖x̂_s(t) − x_s(t)‖² / (2n · Σ_s (T_s − 1))``: the trajectory error against the record."""
        pairs = zip(self.predicted, self.observed, strict=True)
        squares = torch.cat([(p[1:] - o[1:]).pow(2).reshape(-1) for p, o in pairs])
        return float(squares.mean())

    @property
    def energy_mse(self) -> float:
        """``mean_{s, t>0} (E(x̂_s(t)) − E(x_s(t)))²``: the energy error against the record."""
        pairs = zip(self.predicted_energy, self.observed_energy, strict=True)
        errors = torch.cat([(p[1:] - o[1:]) for p, o in pairs])
        return float(errors.pow(2).mean())

    def summary(self) -> dict[str, Any]:
        """``state_mse``, ``energy_mse``, ``segments``, ``samples`` (compared, i.e. after each first) and
        ``integrator``."""
        return {
            "state_mse": self.state_mse,
            "energy_mse": self.energy_mse,
            "segments": len(self.times),
            "samples": sum(t.shape[0] - 1 for t in self.times),
            "integrator": self.integrator,
        }


def record_rollout(
    model: nn.Module,
    record: TrajectoryRecord,
    *,
    integrator: str | None = None,
    max_step: float | None = None,
    energy: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> RecordRollout:
    """Roll ``model`` out from the first observed state of each gap-free segment of ``record`` over its times.

    Args:
        model: a learned Hamiltonian ``(B, 2n) -> (B,)`` (e.g. a ``HamiltonianNet``, damped or not; a module runs in
            its parameters' dtype, any other callable in float64).
        record: the measured record (``canonflow.data.load_trajectories(..., record=True)``).
        integrator: a name of ``canonflow.integrators.METHODS``; default ``"implicit_midpoint"``, or
            ``"conformal_midpoint"`` for a damped model (a conservative method refuses one).
        max_step: the largest step; each observed interval ``Δt`` is split into ``⌈Δt_max / max_step⌉`` equal steps
            (``Δt_max`` the segment's longest interval). Default: a tenth of the record's median interval.
        energy: ``E(x)``, ``(B, 2n) -> (B,)``, evaluated in float64 along the record and the rollout; default the
            model itself (``H_θ``, in the model's dtype).

    Returns a :class:`RecordRollout`. Segments of one sample are skipped.
    """
    who = "record_rollout"
    if not isinstance(record, TrajectoryRecord):
        raise TypeError(f"{who}: expected a canonflow.data.TrajectoryRecord, got {type(record).__name__}")
    damped = getattr(model, "damping", None) is not None
    name = integrator or ("conformal_midpoint" if damped else "implicit_midpoint")
    if name not in METHODS:
        raise ValueError(f"{who}: unknown integrator {name!r}; choose one of {sorted(METHODS)}")
    method = METHODS[name]
    median = record.summary()["median_step"]
    max_step = 0.1 * median if max_step is None else check_positive_float(max_step, "max_step", who)
    dtype = model_dtype(model) if isinstance(model, nn.Module) else torch.float64
    energy = model if energy is None else energy
    result = RecordRollout([], [], [], [], [], [], "")
    substep_counts = []
    for (times, states, _), label in zip(record.segments(), record.segment_labels(), strict=True):
        if times.shape[0] < 2:
            continue
        substeps = max(1, math.ceil(float((times[1:] - times[:-1]).max()) / max_step))
        substep_counts.append(substeps)
        with torch.no_grad():
            path = integrate_times(
                method, model, states[:1].to(dtype), times[None].to(dtype), substeps=substeps, **_options(method, model)
            )[:, 0]
            observed = states.to(torch.float64)
            predicted = path.to(torch.float64)
            energies = [
                _energy(energy, x, dtype if energy is model else torch.float64, who) for x in (observed, predicted)
            ]
        result.labels.append(label)
        result.times.append(times.to(torch.float64))
        result.observed.append(observed)
        result.predicted.append(predicted)
        result.observed_energy.append(energies[0])
        result.predicted_energy.append(energies[1])
    if not result.times:
        raise ValueError(f"{who}: the record has no segment of two or more samples")
    result.integrator = f"{name}, {min(substep_counts)}–{max(substep_counts)} steps per observed interval"
    return result


def _options(method: Any, model: nn.Module) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if method.name in ("implicit_midpoint", "conformal_midpoint"):
        options.update(tol=1e-12, max_iter=100)
    if method.dissipative:
        damping = getattr(model, "damping", None)
        options["damping"] = 0.0 if damping is None else damping
    return options


def _energy(
    energy: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, dtype: torch.dtype, who: str
) -> torch.Tensor:
    return check_energy(energy(x.to(dtype)), x.shape[0], who).detach().to(torch.float64)


def plot_record_rollout(
    rollouts: RecordRollout | dict[str, RecordRollout], *, segments: Sequence[int] | None = None, coordinate: int = 0
) -> Any:
    """A matplotlib ``Figure``: the record (dots) against one or more models' rollouts (lines), per segment.

    Top row: the coordinate ``x[:, coordinate]`` (default ``q_1``) against time; bottom row: the energy ``E``.
    ``rollouts``: one :class:`RecordRollout` or ``{model name: rollout}`` of the same record; ``segments``: indices
    of the segments to draw (default the first three). Returns the figure (not shown, not saved).
    """
    from matplotlib.figure import Figure

    named = {"model": rollouts} if isinstance(rollouts, RecordRollout) else dict(rollouts)
    first = next(iter(named.values()))
    chosen = list(range(min(3, len(first.times)))) if segments is None else list(segments)
    figure = Figure(figsize=(4 * len(chosen), 5.5), layout="constrained")
    axes = figure.subplots(2, len(chosen), squeeze=False, sharex="col")
    for column, index in enumerate(chosen):
        t = first.times[index].numpy()
        top, bottom = axes[0, column], axes[1, column]
        top.plot(t, first.observed[index][:, coordinate].numpy(), "k.", ms=4, label="record")
        bottom.plot(t, first.observed_energy[index].numpy(), "k.", ms=4, label="record")
        for name, rollout in named.items():
            top.plot(t, rollout.predicted[index][:, coordinate].numpy(), "-", lw=1.2, label=name)
            bottom.plot(t, rollout.predicted_energy[index].numpy(), "-", lw=1.2, label=name)
        top.set_title(first.labels[index])
        top.set_ylabel(f"x[{coordinate}]")
        bottom.set_ylabel("energy")
        bottom.set_xlabel("t")
    axes[0, 0].legend(fontsize=8)
    return figure
