"""Trajectories from outside canonflow: read measured or externally simulated ``(t, q, p)`` or ``(t, q)`` into
:class:`~canonflow.data.TrajectoryData`, and write them back in the same layouts.

Two file layouts, chosen by the suffix, and the same arrays in memory:

``.npz`` (NumPy archive, ``numpy.savez``)
    ``t``: sample times ``(T,)``, strictly increasing, shared by all trajectories; ``q``: positions
    ``(num, T, n)``; ``p``: momenta ``(num, T, n)`` (optional). No other keys. A file written by
    :meth:`TrajectoryData.save` (keys ``times``, ``states``, …) is read as well.
``.csv`` (comma-separated text, one row per sample)
    a header ``trajectory,t,q1,…,qn`` or ``trajectory,t,q1,…,qn,p1,…,pn``, then one row per trajectory and time.
    ``trajectory`` is any label (trajectories are kept in the order of their first row); rows of a trajectory
    may come in any order and are sorted by ``t``; every trajectory must have the same times. Blank lines and
    lines starting with ``#`` are skipped.
a mapping
    ``{"t": ..., "q": ..., "p": ...}`` of arrays or tensors with the ``.npz`` shapes.

Without momenta, ``p`` is estimated as ``p = m·dq/dt`` when a ``mass`` is given (the momentum of
``H = Σ_k p_k²/(2m_k) + V(q)``) and refused otherwise. Time derivatives ``dq/dt`` and the stored
``derivatives = dx/dt`` are finite differences along each trajectory (``numpy.gradient``: second-order central
differences inside, second-order one-sided at the ends, for uneven spacing too; first order with two samples).
Loaded data know no noise-free reference: ``clean_states`` are the observed ``states``, ``derivatives`` are
estimates (not exact, unlike those of :func:`~canonflow.data.trajectories`), and ``noise_std`` only records
what the caller states. Learning a Hamiltonian from them uses finite differences or trajectory matching
(``fit_hamiltonian``'s defaults), never ``derivatives="exact"``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from canonflow.checkpoint import atomic_write
from canonflow.data.trajectories import TrajectoryData
from canonflow.systems.base import check_masses
from canonflow.validation import check_non_negative_float, check_times, check_trajectories

__all__ = ["FORMATS", "load_trajectories", "save_trajectories"]

logger = logging.getLogger(__name__)

FORMATS = (".npz", ".csv")
"""The file suffixes :func:`load_trajectories` and :func:`save_trajectories` read and write."""

_KEYS = {"t", "q", "p"}
_SAVED_KEYS = {"format_version", "times", "states"}  # a TrajectoryData.save archive


def load_trajectories(
    source: str | os.PathLike[str] | Mapping[str, object],
    *,
    mass: float | Sequence[float] | None = None,
    noise_std: float = 0.0,
    name: str | None = None,
    dtype: torch.dtype = torch.float64,
) -> TrajectoryData:
    """Trajectories ``(t, q, p)`` or ``(t, q)`` from a ``.npz`` or ``.csv`` file or a mapping of arrays.

    Args:
        source: a path ending in ``.npz`` or ``.csv``, or a mapping with keys ``t`` ``(T,)``, ``q``
            ``(num, T, n)`` and optionally ``p`` ``(num, T, n)`` (layouts in the module docstring).
        mass: without momenta in the data, estimate ``p = m·dq/dt`` by finite differences with this mass (one
            positive number or ``n`` of them); without momenta and without ``mass`` the data are refused. With
            momenta in the data, ``mass`` is not used.
        noise_std: the observation noise's standard deviation, if known (recorded, nothing is added).
        name: ``TrajectoryData.system_name`` (default: the file's stem, or ``"data"`` for a mapping).
        dtype: the floating dtype of the result (files are read in float64).

    Returns a :class:`~canonflow.data.TrajectoryData` with ``states = [q, p]`` ``(num, T, 2n)``, ``clean_states``
    equal to ``states`` and finite-difference ``derivatives``. A missing file, an unknown suffix, a malformed
    file (missing or unexpected keys, wrong shapes, unequal times, text that is not a number, NaN or Inf) raises
    an error naming ``load_trajectories`` and the file.
    """
    who = "load_trajectories"
    if isinstance(source, Mapping):
        where, default_name = "the given arrays", "data"
        arrays = _from_mapping(source, f"{who}: {where}")
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        where, default_name = str(path), path.stem
        if path.suffix.lower() not in FORMATS:
            raise ValueError(f"{who}: {path} has suffix {path.suffix!r}; expected one of {', '.join(FORMATS)}")
        if not path.is_file():
            raise FileNotFoundError(f"{who}: {path}: no such file")
        if path.suffix.lower() == ".npz":
            saved = _read_npz(path, f"{who}: {path}")
            if isinstance(saved, TrajectoryData):
                return saved.to(dtype) if name is None else _renamed(saved, name).to(dtype)
            arrays = saved
        else:
            arrays = _read_csv(path, f"{who}: {path}")
    else:
        raise TypeError(f"{who}: expected a path (.npz or .csv) or a mapping of arrays, got {type(source).__name__}")
    noise_std = check_non_negative_float(noise_std, "noise_std", who)
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"{who}: expected name to be a non-empty str, got {name!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{who}: expected a floating dtype, got {dtype}")
    data = _trajectory_data(arrays, mass, noise_std, default_name if name is None else name, f"{who}: {where}")
    logger.debug("loaded %d trajectories of %d samples from %s", data.num_trajectories, data.num_times, where)
    return data.to(dtype)


def save_trajectories(data: TrajectoryData, path: str | os.PathLike[str], *, momenta: bool = True) -> None:
    """Write ``data``'s observed ``states`` to ``path`` (``.npz`` or ``.csv``) in the layouts that
    :func:`load_trajectories` reads, atomically (a temporary file renamed into place).

    ``.npz``: keys ``t`` ``(T,)``, ``q`` and ``p`` ``(num, T, n)``. ``.csv``: the header
    ``trajectory,t,q1,…,qn,p1,…,pn`` and one row per trajectory (labelled ``0 … num−1``) and time, numbers with 17
    significant digits (a float64 round trip is exact). ``momenta=False`` leaves ``p`` out (positions only).
    Only the states are written: ``clean_states``, ``derivatives`` and ``noise_std`` are not (use
    :meth:`TrajectoryData.save` to keep everything).
    """
    who = "save_trajectories"
    if not isinstance(data, TrajectoryData):
        raise TypeError(f"{who}: expected a TrajectoryData, got {type(data).__name__}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{who}: {path} has suffix {path.suffix!r}; expected one of {', '.join(FORMATS)}")
    n = data.n
    t = data.times.detach().cpu().to(torch.float64).numpy()
    states = data.states.detach().cpu().to(torch.float64).numpy()
    q, p = states[..., :n], states[..., n:]
    if suffix == ".npz":
        arrays = {"t": t, "q": q, "p": p} if momenta else {"t": t, "q": q}
        atomic_write(path, lambda stream: np.savez(stream, **arrays))
        return
    num, length = data.num_trajectories, data.num_times
    columns = (
        ["trajectory", "t"] + [f"q{k + 1}" for k in range(n)] + ([f"p{k + 1}" for k in range(n)] if momenta else [])
    )
    table = np.concatenate(
        [
            np.repeat(np.arange(num, dtype=np.float64), length)[:, None],
            np.tile(t, num)[:, None],
            q.reshape(-1, n),
            *([p.reshape(-1, n)] if momenta else []),
        ],
        axis=1,
    )
    text = io.StringIO()
    text.write(",".join(columns) + "\n")
    np.savetxt(text, table, fmt="%.17g", delimiter=",")
    atomic_write(path, lambda stream: stream.write(text.getvalue().encode()))


# ---------------------------------------------------------------------------------------------- reading


def _renamed(data: TrajectoryData, name: str) -> TrajectoryData:
    return TrajectoryData(data.times, data.states, data.clean_states, data.derivatives, data.noise_std, name)


def _as_array(value: object, key: str, where: str) -> np.ndarray:
    """``value`` as a float64 NumPy array; a ``TypeError`` naming ``where`` and ``key`` if it holds no numbers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{where}: {key} must be an array of real numbers, got {type(value).__name__}") from error
    return array


def _check_keys(keys: set[str], where: str) -> None:
    """A ``ValueError`` naming ``where`` unless ``keys`` are ``t``, ``q`` and optionally ``p``."""
    if not {"t", "q"} <= keys or not keys <= _KEYS:
        missing = sorted({"t", "q"} - keys)
        raise ValueError(
            f"{where}: expected the arrays t, q and optionally p, found {sorted(map(str, keys))}"
            + (f" (missing {missing})" if missing else "")
        )


def _from_mapping(source: Mapping[str, object], where: str) -> dict[str, np.ndarray]:
    _check_keys(set(source), where)
    return {key: _as_array(value, key, where) for key, value in source.items()}


def _read_npz(path: Path, where: str) -> dict[str, np.ndarray] | TrajectoryData:
    """The arrays of an ``.npz`` exchange file, or the :class:`TrajectoryData` of a :meth:`TrajectoryData.save`
    archive."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise ValueError(f"{where} is not a readable .npz archive: {type(error).__name__}: {error}") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{where} holds a single .npy array, not an .npz archive of t, q and optionally p")
    with archive:
        keys = set(archive.files)
        if _SAVED_KEYS <= keys:
            return TrajectoryData.load(path)
        _check_keys(keys, where)
        try:
            return {key: np.asarray(archive[key], dtype=np.float64) for key in keys}
        except (zipfile.BadZipFile, TypeError, ValueError) as error:
            raise ValueError(f"{where}: cannot read its arrays as real numbers: {error}") from error


def _read_csv(path: Path, where: str) -> dict[str, np.ndarray]:
    """The arrays ``t``, ``q`` (and ``p``) of a ``.csv`` file in the layout of the module docstring."""
    try:
        with path.open(newline="") as handle:
            lines = [(k, line) for k, line in enumerate(handle, 1) if line.strip() and not line.startswith("#")]
    except UnicodeDecodeError as error:
        raise ValueError(f"{where} is not a text file: {error}") from error
    if not lines:
        raise ValueError(f"{where}: the file is empty (expected a header trajectory,t,q1,...)")
    rows = [(k, next(csv.reader([line]))) for k, line in lines]
    header = [column.strip() for column in rows[0][1]]
    n = _check_header(header, where, rows[0][0])
    labels: dict[str, list[tuple[float, list[float]]]] = {}
    for number, row in rows[1:]:
        if len(row) != len(header):
            raise ValueError(
                f"{where}, line {number}: expected {len(header)} columns ({','.join(header)}), got {len(row)}"
            )
        try:
            values = [float(entry) for entry in row[1:]]
        except ValueError as error:
            raise ValueError(f"{where}, line {number}: {error}") from error
        labels.setdefault(row[0].strip(), []).append((values[0], values[1:]))
    if not labels:
        raise ValueError(f"{where}: the file has a header but no data rows")
    first, times, columns = next(iter(labels)), None, []
    for label, samples in labels.items():
        samples.sort(key=lambda sample: sample[0])
        t = np.array([sample[0] for sample in samples])
        if times is None:
            times = t
        elif not np.array_equal(t, times):
            raise ValueError(
                f"{where}: trajectory {label!r} is sampled at other times than trajectory {first!r} "
                f"({len(t)} and {len(times)} samples); all trajectories must share one set of times"
            )
        columns.append(np.array([sample[1] for sample in samples]))
    values = np.stack(columns)  # (num, T, n or 2n)
    arrays = {"t": times, "q": values[..., :n]}
    if values.shape[-1] == 2 * n:
        arrays["p"] = values[..., n:]
    return arrays


def _check_header(header: list[str], where: str, line: int) -> int:
    """The degrees of freedom ``n`` named by a header ``trajectory,t,q1..qn[,p1..pn]``; else a ``ValueError``."""
    n = sum(1 for column in header[2:] if column.startswith("q"))
    positions = [f"q{k + 1}" for k in range(n)]
    if (
        header[:2] != ["trajectory", "t"]
        or n == 0
        or header[2:] not in (positions, positions + [f"p{k + 1}" for k in range(n)])
    ):
        raise ValueError(
            f"{where}, line {line}: expected the header trajectory,t,q1,...,qn or trajectory,t,q1,...,qn,p1,...,pn, "
            f"got {','.join(header)}"
        )
    return n


# ---------------------------------------------------------------------------------------------- assembling


def _rate(values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``d values/dt`` along axis 1 by finite differences (``numpy.gradient``; second order with ≥ 3 samples)."""
    return np.gradient(values, t, axis=1, edge_order=2 if len(t) >= 3 else 1)


def _trajectory_data(
    arrays: dict[str, np.ndarray], mass: object, noise_std: float, name: str, where: str
) -> TrajectoryData:
    """A :class:`TrajectoryData` from checked arrays ``t``, ``q`` (and ``p``)."""
    t, q, p = arrays["t"], arrays["q"], arrays.get("p")
    if q.ndim != 3 or q.shape[0] < 1 or q.shape[2] < 1:
        raise ValueError(
            f"{where}: expected q of shape (num, T, n) (for one trajectory q[None], for n = 1 q[..., None]), "
            f"got {q.shape}"
        )
    n = q.shape[2]
    if q.shape[1] < 2:
        raise ValueError(f"{where}: expected at least 2 samples per trajectory, got T={q.shape[1]}")
    times = check_times(torch.from_numpy(t), q.shape[1], where, torch.float64)
    if p is None:
        if mass is None:
            raise ValueError(
                f"{where} has positions q but no momenta p; pass mass=m to estimate p = m·dq/dt by finite "
                f"differences, or add the momenta p (shape (num, T, n); columns p1..pn in a .csv)"
            )
        p = np.array(check_masses(mass, n, where)) * _rate(q, t)
    elif p.shape != q.shape:
        raise ValueError(f"{where}: expected p of the shape of q {q.shape}, got {p.shape}")
    states = check_trajectories(torch.from_numpy(np.concatenate([q, p], axis=-1)), n, where)
    derivatives = torch.from_numpy(_rate(states.numpy(), t))
    if not torch.isfinite(derivatives).all():
        raise ValueError(f"{where}: the finite-difference derivatives overflow (times too close together?)")
    return TrajectoryData(times, states, states.clone(), derivatives, noise_std, name)
