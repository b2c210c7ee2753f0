"""Shared by the tests of ``canonflow.data``'s trajectory files and loader: generated data to write, and the check
that a bad file is refused with an error naming ``load_trajectories`` and the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from canonflow.data import TrajectoryData, load_trajectories, trajectories
from canonflow.systems import HarmonicOscillator


def oscillator_data(num: int = 3, points: int = 41) -> tuple[HarmonicOscillator, TrajectoryData]:
    """``num`` noise-free trajectories of the oscillator ω = (1, 2) at ``points`` times on [0, 2]."""
    system = HarmonicOscillator(2, omega=[1.0, 2.0])
    return system, trajectories(system, num, (2.0, points), seed=1)


def assert_file_refused(path: Path, content: str | dict | None, error: type[Exception], message: str) -> None:
    """Write ``content`` to ``path`` (text, arrays for ``numpy.savez``, or ``None`` for no file) and check that
    ``load_trajectories(path)`` raises ``error`` naming the function and the file, then ``message``."""
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, dict):
        np.savez(path, **content)
    with pytest.raises(error, match=f"load_trajectories: {re.escape(str(path))}.*{message}"):
        load_trajectories(path)
