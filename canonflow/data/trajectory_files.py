"""Trajectory files: the layouts :func:`~canonflow.data.load_trajectories` reads and :func:`save_trajectories` writes.

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
one row per sample (``.npz`` or a mapping)
    ``trajectory`` ``(N,)`` (labels: numbers or strings), ``t`` ``(N,)``, ``q`` ``(N, n)`` (or ``(N,)`` for
    ``n = 1``), optionally ``p`` of the shape of ``q``: the layout of the ``.csv``, as arrays (e.g. a measured
    record of ``(trial, t, angle, angular velocity)``).

:func:`read_arrays` reads any of them into plain arrays (a :meth:`TrajectoryData.save` archive into its
:class:`~canonflow.data.TrajectoryData`); turning the arrays into trajectories is :mod:`canonflow.data.measured`'s.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from canonflow.checkpoint import atomic_write
from canonflow.data.trajectories import TrajectoryData

__all__ = ["FORMATS", "read_arrays", "save_trajectories"]

FORMATS = (".npz", ".csv")
"""The file suffixes :func:`~canonflow.data.load_trajectories` and :func:`save_trajectories` read and write."""

_ROW_KEYS = {"t", "q", "p", "xdot", "trajectory"}  # "trajectory": one row per sample
_SAVED_KEYS = {"format_version", "times", "states"}  # a TrajectoryData.save archive


def read_arrays(
    source: str | os.PathLike[str] | Mapping[str, object], who: str
) -> tuple[dict[str, np.ndarray] | TrajectoryData, str, str]:
    """The arrays of ``source`` (a ``.npz`` or ``.csv`` path, or a mapping of arrays; see the module docstring) as
    float64 NumPy arrays (``trajectory`` labels as strings), or the :class:`TrajectoryData` of a
    :meth:`TrajectoryData.save` archive; with where they came from and the name they suggest (the file's stem,
    ``"data"`` for a mapping). Errors name ``who`` and the file."""
    if isinstance(source, Mapping):
        return _from_mapping(source, f"{who}: the given arrays"), "the given arrays", "data"
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"{who}: expected a path (.npz or .csv) or a mapping of arrays, got {type(source).__name__}")
    path = Path(source)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{who}: {path} has suffix {path.suffix!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{who}: {path}: no such file")
    read = _read_npz if path.suffix.lower() == ".npz" else _read_csv
    return read(path, f"{who}: {path}"), str(path), path.stem


def save_trajectories(data: TrajectoryData, path: str | os.PathLike[str], *, momenta: bool = True) -> None:
    """Write ``data``'s observed ``states`` to ``path`` (``.npz`` or ``.csv``) in the layouts that
    :func:`~canonflow.data.load_trajectories` reads, atomically (a temporary file renamed into place).

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
    """A ``ValueError`` naming ``where`` unless ``keys`` are ``t``, ``q`` and optionally ``p``, ``xdot`` and (one row
    per sample) ``trajectory``."""
    if not {"t", "q"} <= keys or not keys <= _ROW_KEYS:
        missing = sorted({"t", "q"} - keys)
        raise ValueError(
            f"{where}: expected the arrays t, q and optionally p, xdot, trajectory; found {sorted(map(str, keys))}"
            + (f" (missing {missing})" if missing else "")
        )


def _labels(value: object, where: str) -> np.ndarray:
    """The ``trajectory`` labels ``(N,)`` as strings (numbers or strings in the data)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{where}: expected trajectory labels of shape (N,), got {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{where}: the trajectory labels contain NaN or Inf")
    if array.dtype.kind not in "iufUS":
        raise TypeError(f"{where}: trajectory labels must be numbers or strings, got dtype {array.dtype}")
    if array.dtype.kind in "iuf":
        return np.array([f"{label:g}" for label in array.astype(np.float64)])
    return array.astype(str)


def _from_mapping(source: Mapping[str, object], where: str) -> dict[str, np.ndarray]:
    _check_keys(set(source), where)
    return {
        key: _labels(value, where) if key == "trajectory" else _as_array(value, key, where)
        for key, value in source.items()
    }


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
            return {
                key: _labels(archive[key], where) if key == "trajectory" else np.asarray(archive[key], dtype=np.float64)
                for key in keys
            }
        except (zipfile.BadZipFile, TypeError, ValueError) as error:
            raise ValueError(f"{where}: cannot read its arrays as real numbers: {error}") from error


def _read_csv(path: Path, where: str) -> dict[str, np.ndarray]:
    """The arrays ``trajectory``, ``t``, ``q`` (and ``p``), one row per sample, of a ``.csv`` file in the layout of
    the module docstring."""
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
    labels, values = [], []
    for number, row in rows[1:]:
        if len(row) != len(header):
            raise ValueError(
                f"{where}, line {number}: expected {len(header)} columns ({','.join(header)}), got {len(row)}"
            )
        try:
            values.append([float(entry) for entry in row[1:]])
        except ValueError as error:
            raise ValueError(f"{where}, line {number}: {error}") from error
        labels.append(row[0].strip())
    if not labels:
        raise ValueError(f"{where}: the file has a header but no data rows")
    table = np.array(values)  # (N, 1 + n or 1 + 2n)
    arrays = {"trajectory": np.array(labels), "t": table[:, 0], "q": table[:, 1 : 1 + n]}
    if table.shape[1] == 1 + 2 * n:
        arrays["p"] = table[:, 1 + n :]
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
