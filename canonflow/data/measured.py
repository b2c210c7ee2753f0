"""Trajectories from outside canonflow: read measured or externally simulated ``(t, q, p)`` or ``(t, q)`` into
:class:`~canonflow.data.TrajectoryData` (shared, uniform-or-not times) or, with ``record=True``, into a
:class:`TrajectoryRecord` (trajectories as measured: own times, unequal lengths, gaps). The file layouts, and
writing them back, are :mod:`canonflow.data.trajectory_files`'s.

Both array layouts may carry given derivatives ``xdot`` = ``dx/dt`` (``(num, T, 2n)``, or ``(N, 2n)`` one row per
sample); without them the derivatives are estimated (``derivatives=``, see :func:`estimate_derivatives`).

Without momenta, ``p`` is estimated as ``p = m·dq/dt`` when a ``mass`` is given (the momentum of
``H = Σ_k p_k²/(2m_k) + V(q)``) and refused otherwise. Time derivatives ``dq/dt`` and the stored
``derivatives = dx/dt`` are estimated along each trajectory (each gap-free segment of a record) by the chosen
estimator: ``"central"`` (default; ``numpy.gradient``: second-order central differences inside, second-order
one-sided at the ends, for uneven spacing too; first order with two samples), ``"forward"`` or ``"spline"``.
Loaded data know no noise-free reference: ``clean_states`` are the observed ``states``, ``derivatives`` are
estimates (not exact, unlike those of :func:`~canonflow.data.trajectories`), and ``noise_std`` only records
what the caller states. Learning a Hamiltonian from them uses finite differences or trajectory matching
(``fit_hamiltonian``'s defaults), never ``derivatives="exact"``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from canonflow.data.records import (
    DERIVATIVE_ESTIMATORS,
    MIN_SAMPLES,
    TrajectoryRecord,
    estimate_derivatives,
    gap_free_pieces,
)
from canonflow.data.trajectories import TrajectoryData
from canonflow.data.trajectory_files import read_arrays
from canonflow.systems.base import check_masses
from canonflow.validation import (
    check_choice,
    check_non_negative_float,
    check_positive_float,
    check_times,
    check_trajectories,
)

__all__ = ["DEFAULT_GAP_FACTOR", "load_trajectories"]

logger = logging.getLogger(__name__)

DEFAULT_GAP_FACTOR = 1.5
"""A record's default ``max_gap``: intervals longer than this many median intervals are gaps."""


def load_trajectories(
    source: str | os.PathLike[str] | Mapping[str, object],
    *,
    mass: float | Sequence[float] | None = None,
    noise_std: float = 0.0,
    name: str | None = None,
    dtype: torch.dtype = torch.float64,
    derivatives: str = "central",
    record: bool = False,
    max_gap: float | None = None,
) -> TrajectoryData | TrajectoryRecord:
    """Trajectories ``(t, q, p)`` or ``(t, q)`` from a ``.npz`` or ``.csv`` file or a mapping of arrays.

    Args:
        source: a path ending in ``.npz`` or ``.csv``, or a mapping with keys ``t`` ``(T,)``, ``q``
            ``(num, T, n)`` and optionally ``p`` ``(num, T, n)`` (layouts in the module docstring).
        mass: without momenta in the data, estimate ``p = m·dq/dt`` by finite differences with this mass (one
            positive number or ``n`` of them); without momenta and without ``mass`` the data are refused. With
            momenta in the data, ``mass`` is not used.
        noise_std: the observation noise's standard deviation, if known (recorded, nothing is added).
        name: ``TrajectoryData.system_name`` (default: the file's stem, or ``"data"`` for a mapping).
        dtype: the floating dtype of the states and derivatives (files are read in float64; a record keeps its
            times in float64 whatever ``dtype``, so that its steps are exact).
        derivatives: the estimator of ``dx/dt`` (and of ``dq/dt`` for ``p = m·dq/dt``) where the data give no
            ``xdot``: ``"central"``, ``"forward"`` or ``"spline"`` (:func:`estimate_derivatives`).
        record: return a :class:`TrajectoryRecord` (every trajectory with its own times and length, cut into
            gap-free segments) instead of a ``TrajectoryData`` (all trajectories at one set of times).
        max_gap: with ``record=True``, intervals longer than ``max_gap`` are gaps (no derivative estimate or
            training window spans one); default ``1.5 ×`` the median interval of the record.

    Returns a :class:`~canonflow.data.TrajectoryData` with ``states = [q, p]`` ``(num, T, 2n)``, ``clean_states``
    equal to ``states`` and the given or estimated ``derivatives``; or, with ``record=True``, a
    :class:`TrajectoryRecord`. A missing file, an unknown suffix, a malformed file (missing or unexpected keys,
    wrong shapes, unequal times without ``record=True``, repeated times, text that is not a number, NaN or Inf)
    raises an error naming ``load_trajectories`` and the file.
    """
    who = "load_trajectories"
    arrays, where, default_name = read_arrays(source, who)
    if isinstance(arrays, TrajectoryData):  # a TrajectoryData.save archive
        return arrays.to(dtype) if name is None else _renamed(arrays, name).to(dtype)
    noise_std = check_non_negative_float(noise_std, "noise_std", who)
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"{who}: expected name to be a non-empty str, got {name!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{who}: expected a floating dtype, got {dtype}")
    check_choice(derivatives, DERIVATIVE_ESTIMATORS, "derivatives", who)
    if not isinstance(record, bool):
        raise TypeError(f"{who}: expected record to be a bool, got {record!r}")
    if max_gap is not None:
        if not record:
            raise ValueError(f"{who}: max_gap applies to a record (record=True) only")
        max_gap = check_positive_float(max_gap, "max_gap", who)
    name = default_name if name is None else name
    if record:
        groups = _groups(arrays, f"{who}: {where}")
        result = _record(groups, mass, noise_std, name, derivatives, max_gap, dtype, f"{who}: {where}")
        logger.debug("loaded a record of %d trajectories, %d samples from %s", len(groups), result.num_samples, where)
        return result
    if "trajectory" in arrays:
        arrays = _shared_times(_groups(arrays, f"{who}: {where}"), f"{who}: {where}")
    data = _trajectory_data(arrays, mass, noise_std, name, derivatives, f"{who}: {where}")
    logger.debug("loaded %d trajectories of %d samples from %s", data.num_trajectories, data.num_times, where)
    return data.to(dtype)


def _renamed(data: TrajectoryData, name: str) -> TrajectoryData:
    return TrajectoryData(data.times, data.states, data.clean_states, data.derivatives, data.noise_std, name)


# ---------------------------------------------------------------------------------------------- derivatives


def _rate(values: np.ndarray, t: np.ndarray, method: str) -> np.ndarray:
    """``d values/dt`` along axis 1 of ``values`` ``(num, T, w)`` by :func:`estimate_derivatives`."""
    return np.stack([estimate_derivatives(t, trajectory, method) for trajectory in values])


# ---------------------------------------------------------------------------------------------- assembling


@dataclass
class _Group:
    """One trajectory of the data: its label, times ``(T,)``, ``q`` ``(T, n)``, ``p`` and ``xdot`` (or ``None``)."""

    label: str
    t: np.ndarray
    q: np.ndarray
    p: np.ndarray | None
    xdot: np.ndarray | None


def _groups(arrays: dict[str, np.ndarray], where: str) -> list[_Group]:
    """The trajectories of either layout, each sorted by time (labels in the order of their first sample)."""
    t, q, p, xdot = arrays["t"], arrays["q"], arrays.get("p"), arrays.get("xdot")
    if "trajectory" not in arrays:  # (num, T, n) arrays at shared times
        _check_wide(t, q, p, where)
        if xdot is not None and xdot.shape != q.shape[:2] + (2 * q.shape[2],):
            raise ValueError(f"{where}: expected xdot of shape {q.shape[:2] + (2 * q.shape[2],)}, got {xdot.shape}")
        return [
            _Group(str(r), t, q[r], None if p is None else p[r], None if xdot is None else xdot[r])
            for r in range(q.shape[0])
        ]
    labels = arrays["trajectory"]
    if q.ndim == 1:
        q = q[:, None]
        p = None if p is None else p.reshape(-1, 1)
    count = labels.shape[0]
    n = q.shape[1] if q.ndim == 2 else 0
    if t.shape != (count,) or q.ndim != 2 or q.shape[0] != count or n == 0:
        raise ValueError(
            f"{where}: one row per sample needs trajectory (N,), t (N,) and q (N, n) with one N; got "
            f"{labels.shape}, {t.shape} and {q.shape}"
        )
    for key, value, width in (("p", p, n), ("xdot", xdot, 2 * n)):
        if value is not None and value.shape != (count, width):
            raise ValueError(f"{where}: expected {key} of shape ({count}, {width}), got {value.shape}")
    for key, value in (("t", t), ("q", q), ("p", p), ("xdot", xdot)):
        if value is not None and not np.isfinite(value).all():
            raise ValueError(f"{where}: {key} contains NaN or Inf")
    groups = []
    for label in dict.fromkeys(labels.tolist()):
        rows = np.flatnonzero(labels == label)
        rows = rows[np.argsort(t[rows], kind="stable")]
        times = t[rows]
        repeated = np.flatnonzero(np.diff(times) <= 0)
        if repeated.size:
            raise ValueError(
                f"{where}: the times of trajectory {label!r} must be strictly increasing; t = {times[repeated[0]]!r} "
                f"occurs twice"
            )
        groups.append(
            _Group(label, times, q[rows], None if p is None else p[rows], None if xdot is None else xdot[rows])
        )
    return groups


def _check_wide(t: np.ndarray, q: np.ndarray, p: np.ndarray | None, where: str) -> None:
    if q.ndim != 3 or q.shape[0] < 1 or q.shape[2] < 1:
        raise ValueError(
            f"{where}: expected q of shape (num, T, n) (for one trajectory q[None], for n = 1 q[..., None]), "
            f"got {q.shape}"
        )
    if q.shape[1] < 2:
        raise ValueError(f"{where}: expected at least 2 samples per trajectory, got T={q.shape[1]}")
    if p is not None and p.shape != q.shape:
        raise ValueError(f"{where}: expected p of the shape of q {q.shape}, got {p.shape}")


def _shared_times(groups: list[_Group], where: str) -> dict[str, np.ndarray]:
    """``(num, T, ·)`` arrays of trajectories sampled at one set of times; else a ``ValueError`` naming the first
    trajectory that is not."""
    first = groups[0]
    for group in groups[1:]:
        if not np.array_equal(group.t, first.t):
            raise ValueError(
                f"{where}: trajectory {group.label!r} is sampled at other times than trajectory {first.label!r} "
                f"({len(group.t)} and {len(first.t)} samples); all trajectories must share one set of times "
                f"(load_trajectories(..., record=True) reads trajectories with their own times)"
            )
    arrays = {"t": first.t, "q": np.stack([g.q for g in groups])}
    for key in ("p", "xdot"):
        if getattr(first, key) is not None:
            arrays[key] = np.stack([getattr(g, key) for g in groups])
    return arrays


def _trajectory_data(
    arrays: dict[str, np.ndarray], mass: object, noise_std: float, name: str, method: str, where: str
) -> TrajectoryData:
    """A :class:`TrajectoryData` from checked arrays ``t``, ``q`` (and ``p``, ``xdot``)."""
    t, q, p, xdot = arrays["t"], arrays["q"], arrays.get("p"), arrays.get("xdot")
    _check_wide(t, q, p, where)
    n = q.shape[2]
    times = check_times(torch.from_numpy(t), q.shape[1], where, torch.float64)
    if method == "spline" and q.shape[1] < MIN_SAMPLES["spline"] and (p is None or xdot is None):
        raise ValueError(f"{where}: derivatives='spline' needs at least 5 samples per trajectory, got {q.shape[1]}")
    if p is None:
        if mass is None:
            raise ValueError(
                f"{where} has positions q but no momenta p; pass mass=m to estimate p = m·dq/dt by finite "
                f"differences, or add the momenta p (shape (num, T, n); columns p1..pn in a .csv)"
            )
        p = np.array(check_masses(mass, n, where)) * _rate(q, t, method)
    states = check_trajectories(torch.from_numpy(np.concatenate([q, p], axis=-1)), n, where)
    if xdot is not None:
        if xdot.shape != states.shape:
            raise ValueError(f"{where}: expected xdot of shape {tuple(states.shape)}, got {xdot.shape}")
        derivatives = torch.from_numpy(xdot)
    else:
        derivatives = torch.from_numpy(_rate(states.numpy(), t, method))
    if not torch.isfinite(derivatives).all():
        raise ValueError(f"{where}: the derivatives are not finite (given NaN, or times too close together?)")
    return TrajectoryData(times, states, states.clone(), derivatives, noise_std, name)


def _record(
    groups: list[_Group],
    mass: object,
    noise_std: float,
    name: str,
    method: str,
    max_gap: float | None,
    dtype: torch.dtype,
    where: str,
) -> TrajectoryRecord:
    """A :class:`TrajectoryRecord` of the trajectories ``groups`` (each cut at its gaps for the estimates)."""
    n = groups[0].q.shape[1]
    for group in groups:
        if group.q.shape[1] != n or (group.p is None) != (groups[0].p is None):
            raise ValueError(f"{where}: trajectory {group.label!r} has other columns than {groups[0].label!r}")
        if len(group.t) < 2:
            raise ValueError(f"{where}: expected at least 2 samples per trajectory, trajectory {group.label!r} has 1")
    intervals = np.concatenate([np.diff(g.t) for g in groups])
    max_gap = DEFAULT_GAP_FACTOR * float(np.median(intervals)) if max_gap is None else max_gap
    if groups[0].p is None and mass is None:
        raise ValueError(
            f"{where} has positions q but no momenta p; pass mass=m to estimate p = m·dq/dt by finite "
            f"differences, or add the momenta p (columns p1..pn in a .csv)"
        )
    masses = None if mass is None else np.array(check_masses(mass, n, where))
    given = all(g.xdot is not None for g in groups)
    times, states, derivatives, labels, dropped = [], [], [], [], 0
    for group in groups:
        keep, parts_x, parts_d = [], [], []
        for piece in gap_free_pieces(group.t, max_gap):
            t = group.t[piece]
            q = group.q[piece]
            if group.p is None:
                if len(t) < MIN_SAMPLES[method]:
                    dropped += len(t)  # no estimate of p = m·dq/dt on this segment
                    continue
                p = masses * estimate_derivatives(t, q, method)
            else:
                p = group.p[piece]
            x = np.concatenate([q, p], axis=-1)
            if given:
                d = group.xdot[piece]
            elif len(t) >= MIN_SAMPLES[method]:
                d = estimate_derivatives(t, x, method)
            else:
                d = np.full_like(x, np.nan)  # too short for the estimator: no derivative target here
            keep.append(piece)
            parts_x.append(x)
            parts_d.append(d)
        if not keep:
            continue
        times.append(torch.from_numpy(group.t[np.concatenate(keep)]))
        states.append(torch.from_numpy(np.concatenate(parts_x)).to(dtype))
        derivatives.append(torch.from_numpy(np.concatenate(parts_d)).to(dtype))
        labels.append(group.label)
    if dropped:
        logger.warning("%s: %d samples on segments too short to estimate p = m·dq/dt were dropped", where, dropped)
    if not times:
        raise ValueError(f"{where}: no segment is long enough to estimate the momenta by {method!r}")
    return TrajectoryRecord(
        times, states, derivatives, "given" if given else method, max_gap, labels, noise_std, name, dropped
    )
