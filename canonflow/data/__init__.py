"""Data: reference trajectories of Hamiltonian systems and the point data sets of the benchmarks.

* :mod:`canonflow.data.trajectories`: :func:`trajectories` and :class:`TrajectoryData`;
* :mod:`canonflow.data.measured`: :func:`load_trajectories`, trajectories from outside (``(t, q, p)`` or
  ``(t, q)``), as a :class:`TrajectoryData` or, measured with their own times, gaps and lengths, a
  :class:`TrajectoryRecord`;
* :mod:`canonflow.data.trajectory_files`: the ``.npz`` and ``.csv`` layouts they are read from, and
  :func:`save_trajectories`;
* :mod:`canonflow.data.records`: :class:`TrajectoryRecord` and :func:`estimate_derivatives`;
* :mod:`canonflow.data.digits`: the digits pipeline (split, dequantization, logit preprocessing);
* :mod:`canonflow.data.datasets`: :func:`load_dataset` (digits, ring2d) and the :func:`banana` density.
"""

from canonflow.data.datasets import BANANA_NLL, DATASETS, Dataset, banana, load_dataset
from canonflow.data.digits import LogitPreprocessing, load_digits_split
from canonflow.data.measured import load_trajectories
from canonflow.data.records import DERIVATIVE_ESTIMATORS, TrajectoryRecord, estimate_derivatives
from canonflow.data.trajectories import TrajectoryData, trajectories
from canonflow.data.trajectory_files import save_trajectories

__all__ = [
    "BANANA_NLL",
    "DATASETS",
    "DERIVATIVE_ESTIMATORS",
    "Dataset",
    "LogitPreprocessing",
    "TrajectoryData",
    "TrajectoryRecord",
    "banana",
    "estimate_derivatives",
    "load_dataset",
    "load_digits_split",
    "load_trajectories",
    "save_trajectories",
    "trajectories",
]
