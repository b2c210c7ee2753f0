"""Measured trajectories as they come: each with its own times and length, with gaps (:class:`TrajectoryRecord`),
and the estimators of their time derivatives (:func:`estimate_derivatives`).

:func:`canonflow.data.load_trajectories` with ``record=True`` makes a record from a file or arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from canonflow.validation import check_choice, check_non_negative_float, check_positive_float

__all__ = ["DERIVATIVE_ESTIMATORS", "MIN_SAMPLES", "TrajectoryRecord", "estimate_derivatives", "gap_free_pieces"]

DERIVATIVE_ESTIMATORS = ("central", "forward", "spline")
"""The derivative estimators of :func:`estimate_derivatives` (``load_trajectories(derivatives=...)``)."""
MIN_SAMPLES = {"forward": 2, "central": 2, "spline": 5}
"""The fewest samples of a gap-free segment each estimator of :func:`estimate_derivatives` needs."""


def estimate_derivatives(
    times: np.ndarray | torch.Tensor, values: np.ndarray | torch.Tensor, method: str
) -> np.ndarray:
    """``d values/dt`` along one gap-free sequence: ``times`` ``(T,)`` strictly increasing, ``values`` ``(T, w)``.

    ``method``:

    ``"central"``
        ``numpy.gradient``: the second-order central difference for uneven spacing inside,
        ``(h₋² x_{i+1} − h₊² x_{i−1} + (h₊² − h₋²) x_i) / (h₋h₊(h₋ + h₊))``, second-order one-sided at the ends; the
        first-order difference with two samples. Error ``O(h²)``; noise ``σ`` enters as ``≈ σ/(√2 h)``.
    ``"forward"``
        ``(x_{i+1} − x_i) / (t_{i+1} − t_i)`` at ``t_i`` (the backward difference at the last sample). Error
        ``O(h)``, for comparison with the protocols that use it.
    ``"spline"``
        the derivative of a cubic smoothing spline through the samples (``scipy.interpolate.make_smoothing_spline``,
        its smoothing chosen by generalized cross-validation, per column): for noisy records; at least 5 samples.

    Returns a float64 array ``(T, w)``. Raises a ``ValueError`` for an unknown method or too few samples
    (2 for ``"forward"`` and ``"central"``, 5 for ``"spline"``).
    """
    who = "estimate_derivatives"
    check_choice(method, DERIVATIVE_ESTIMATORS, "method", who)
    t = np.asarray(times.detach().cpu() if isinstance(times, torch.Tensor) else times, dtype=np.float64)
    x = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if t.ndim != 1 or x.ndim != 2 or x.shape[0] != t.shape[0]:
        raise ValueError(f"{who}: expected times (T,) and values (T, w), got {t.shape} and {x.shape}")
    if t.shape[0] < MIN_SAMPLES[method]:
        raise ValueError(f"{who}: method {method!r} needs at least {MIN_SAMPLES[method]} samples, got {t.shape[0]}")
    if not (np.diff(t) > 0).all():
        raise ValueError(f"{who}: times must be strictly increasing")
    if method == "central":
        return np.gradient(x, t, axis=0, edge_order=2 if len(t) >= 3 else 1)
    if method == "forward":
        step = np.diff(x, axis=0) / np.diff(t)[:, None]
        return np.concatenate([step, step[-1:]], axis=0)
    from scipy.interpolate import make_smoothing_spline

    return np.stack([make_smoothing_spline(t, x[:, k]).derivative()(t) for k in range(x.shape[1])], axis=1)


def gap_free_pieces(t: np.ndarray, max_gap: float) -> list[np.ndarray]:
    """Index ranges of the gap-free segments of times ``t`` (cut where ``t_{i+1} − t_i > max_gap``)."""
    cuts = np.flatnonzero(np.diff(t) > max_gap) + 1
    return [np.arange(a, b) for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(t)], strict=True)]


@dataclass
class TrajectoryRecord:
    """Trajectories as measured: each with its own sample times and length, with gaps, in one record.

    Attributes:
        times: one float64 tensor ``(T_r,)`` of strictly increasing times per trajectory (kept in float64 whatever
            the states' dtype, so that intervals are exact).
        states: one tensor ``(T_r, 2n)`` of observed states ``[q, p]`` per trajectory.
        derivatives: one tensor ``(T_r, 2n)`` of ``dx/dt`` per trajectory, given or estimated on each gap-free
            segment by ``derivative_method``; NaN on segments too short for the estimator (no target there).
        derivative_method: ``"given"``, or the estimator of :func:`estimate_derivatives` that made them.
        max_gap: intervals longer than this are gaps: :meth:`segments` cuts there.
        labels: the trajectories' labels in the data.
        noise_std: the observation noise's standard deviation, as stated by the caller (nothing is added).
        name: a name for reports.
        dropped: samples left out because their segment was too short to estimate ``p = m·dq/dt``.

    Made by :func:`load_trajectories` with ``record=True``; the constructor validates shapes, dtypes and times.
    """

    times: list[torch.Tensor]
    states: list[torch.Tensor]
    derivatives: list[torch.Tensor]
    derivative_method: str
    max_gap: float
    labels: list[str]
    noise_std: float = 0.0
    name: str = "record"
    dropped: int = 0

    def __post_init__(self) -> None:
        who = "TrajectoryRecord"
        count = len(self.times)
        if not count or not (len(self.states) == len(self.derivatives) == len(self.labels) == count):
            raise ValueError(f"{who}: expected equally long, non-empty lists of times, states, derivatives, labels")
        width = self.states[0].shape[-1] if self.states[0].dim() == 2 else 0
        if width == 0 or width % 2:
            raise ValueError(f"{who}: expected states of shape (T_r, 2n), got {tuple(self.states[0].shape)}")
        dtype = self.states[0].dtype
        for label, t, x, d in zip(self.labels, self.times, self.states, self.derivatives, strict=True):
            if t.dtype != torch.float64 or t.dim() != 1 or t.shape[0] < 1:
                raise ValueError(
                    f"{who}: trajectory {label!r}: expected float64 times (T,), got {t.dtype} {tuple(t.shape)}"
                )
            if x.shape != (t.shape[0], width) or d.shape != x.shape or x.dtype != dtype or d.dtype != dtype:
                raise ValueError(
                    f"{who}: trajectory {label!r}: expected states and derivatives ({t.shape[0]}, {width})"
                )
            if not x.is_floating_point() or not bool(torch.isfinite(x).all()) or not bool(torch.isfinite(t).all()):
                raise ValueError(f"{who}: trajectory {label!r}: states or times contain NaN or Inf")
            if t.shape[0] > 1 and not bool((t[1:] > t[:-1]).all()):
                raise ValueError(f"{who}: trajectory {label!r}: times must be strictly increasing")
        self.max_gap = check_positive_float(self.max_gap, "max_gap", who)
        self.noise_std = check_non_negative_float(self.noise_std, "noise_std", who)

    @property
    def n(self) -> int:
        """Degrees of freedom (states have width ``2n``)."""
        return self.states[0].shape[-1] // 2

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the states and derivatives."""
        return self.states[0].dtype

    @property
    def num_trajectories(self) -> int:
        """The number of trajectories."""
        return len(self.times)

    @property
    def num_samples(self) -> int:
        """The number of samples over all trajectories."""
        return sum(t.shape[0] for t in self.times)

    def segments(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The gap-free pieces ``(times (T_s,), states (T_s, 2n), derivatives (T_s, 2n))`` of all trajectories, in
        order: each trajectory cut where an interval exceeds ``max_gap``."""
        pieces = []
        for t, x, d in zip(self.times, self.states, self.derivatives, strict=True):
            for index in gap_free_pieces(t.numpy(), self.max_gap):
                pieces.append((t[index], x[index], d[index]))
        return pieces

    def segment_labels(self) -> list[str]:
        """``"<label>/<k>"`` for the ``k``-th segment (from 0) of each trajectory, in the order of :meth:`segments`."""
        return [
            f"{label}/{k}"
            for label, t in zip(self.labels, self.times, strict=True)
            for k in range(len(gap_free_pieces(t.numpy(), self.max_gap)))
        ]

    def summary(self) -> dict[str, object]:
        """Counts and intervals: ``trajectories``, ``samples``, ``segments``, ``gaps``, ``median_step``,
        ``min_step``, ``max_step`` (over the gap-free intervals), ``largest_gap``, ``max_gap``,
        ``derivative_method``, ``dropped``."""
        steps = np.concatenate([np.diff(t.numpy()) for t in self.times])
        inside = steps[steps <= self.max_gap]
        segments = len(self.segments())
        return {
            "trajectories": self.num_trajectories,
            "samples": self.num_samples,
            "segments": segments,
            "gaps": segments - self.num_trajectories,
            "median_step": float(np.median(inside)) if inside.size else math.nan,
            "min_step": float(inside.min()) if inside.size else math.nan,
            "max_step": float(inside.max()) if inside.size else math.nan,
            "largest_gap": float(steps.max()) if steps.size and steps.max() > self.max_gap else None,
            "max_gap": self.max_gap,
            "derivative_method": self.derivative_method,
            "dropped": self.dropped,
        }

    def select(self, labels: Sequence[str]) -> TrajectoryRecord:
        """The record of the trajectories named ``labels`` (in that order), e.g. to hold some out for testing; the
        same ``max_gap`` and derivatives. Unknown labels raise a ``ValueError``."""
        unknown = [label for label in labels if label not in self.labels]
        if unknown or not labels:
            raise ValueError(f"TrajectoryRecord.select: unknown or no labels {unknown}; the record has {self.labels}")
        index = [self.labels.index(label) for label in labels]
        return TrajectoryRecord(
            [self.times[i] for i in index],
            [self.states[i] for i in index],
            [self.derivatives[i] for i in index],
            self.derivative_method,
            self.max_gap,
            [self.labels[i] for i in index],
            self.noise_std,
            self.name,
            self.dropped,
        )

    def split(self, fraction: float) -> tuple[TrajectoryRecord, TrajectoryRecord, bool]:
        """The trajectories split into training and held-out ones, and ``in_sample``: of ``N ≥ 2`` trajectories the
        last ``min(N − 1, max(1, ⌈fraction · N⌉))`` are held out (``0 < fraction < 1``); a record of one trajectory
        has nothing to hold out and serves as both (``in_sample``: ``True``)."""
        if not 0 < fraction < 1:
            raise ValueError(f"TrajectoryRecord.split: expected 0 < fraction < 1, got {fraction}")
        count = self.num_trajectories
        if count < 2:
            return self, self, True
        held = min(count - 1, max(1, math.ceil(fraction * count)))
        return self.select(self.labels[: count - held]), self.select(self.labels[count - held :]), False

    def to(self, dtype: torch.dtype) -> TrajectoryRecord:
        """A copy with the states and derivatives in the floating ``dtype`` (times stay float64)."""
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"TrajectoryRecord.to: expected a floating dtype, got {dtype}")
        return TrajectoryRecord(
            list(self.times),
            [x.to(dtype) for x in self.states],
            [d.to(dtype) for d in self.derivatives],
            self.derivative_method,
            self.max_gap,
            list(self.labels),
            self.noise_std,
            self.name,
            self.dropped,
        )
