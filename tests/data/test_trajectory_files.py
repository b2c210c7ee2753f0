"""Tests of :mod:`canonflow.data.trajectory_files`: the ``.npz`` and ``.csv`` layouts ``load_trajectories`` reads,
``save_trajectories`` writing them, and the files and sources refused before their contents are read."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from canonflow.data import load_trajectories, save_trajectories
from data.common import assert_file_refused, oscillator_data


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_save_and_load_round_trip(tmp_path, suffix: str) -> None:
    _, data = oscillator_data()
    path = tmp_path / f"measured{suffix}"
    save_trajectories(data, path)
    assert sorted(os.listdir(tmp_path)) == [path.name]  # written atomically: no temporary file left
    loaded = load_trajectories(path)
    assert torch.equal(loaded.times, data.times) and torch.equal(loaded.states, data.states)  # float64 exactly
    assert torch.equal(loaded.clean_states, loaded.states) and loaded.noise_std == 0.0
    assert loaded.system_name == "measured" and load_trajectories(path, name="x").system_name == "x"
    # second-order finite differences: |error| ≤ max|x⁽³⁾| Δt²/3 (one-sided at the ends), ω ≤ 2, |x| ≤ 3.1
    error = (loaded.derivatives - data.derivatives).abs().max().item()
    assert 1e-4 < error < 3.1 * 2.0**3 * 0.05**2 / 3
    assert load_trajectories(path, dtype=torch.float32).states.dtype == torch.float32


def test_loaded_trajectories_come_from_any_layout(tmp_path) -> None:
    _, data = oscillator_data(num=2, points=5)
    data.save(tmp_path / "full.npz")  # TrajectoryData.save keeps everything, and load_trajectories reads it
    full = load_trajectories(tmp_path / "full.npz")
    assert torch.equal(full.derivatives, data.derivatives) and full.system_name == "oscillator"
    # a hand-written .csv: labels, comments, blank lines, rows in any order
    text = "# measured\ntrajectory,t,q1,p1\nb,0.5,2.0,0.0\na,0.5,1.0,1.0\n\na,0.0,0.0,1.0\nb,0.0,1.0,0.5\n"
    (tmp_path / "hand.csv").write_text(text)
    hand = load_trajectories(tmp_path / "hand.csv", noise_std=0.1)
    assert hand.noise_std == 0.1 and hand.times.tolist() == [0.0, 0.5]
    assert hand.states.tolist() == [[[1.0, 0.5], [2.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]]  # b (first row), then a


BAD_FILES = {
    "missing.csv": (None, FileNotFoundError, "no such file"),
    "data.txt": ("", ValueError, "suffix '.txt'"),
    "empty.csv": ("# nothing\n", ValueError, "empty"),
    "header.csv": ("traj,t,q1\n0,0,1\n", ValueError, "line 1: expected the header trajectory,t,q1"),
    "columns.csv": ("trajectory,t,q1,p1\n0,0,1\n", ValueError, "line 2: expected 4 columns"),
    "word.csv": ("trajectory,t,q1\n0,0,1\n0,0.1,one\n", ValueError, "line 3: could not convert"),
    "rows.csv": ("trajectory,t,q1\n", ValueError, "no data rows"),
    "keys.npz": ({"t": np.zeros(3), "x": np.zeros((1, 3, 1))}, ValueError, r"found \['t', 'x'\] \(missing \['q'\]\)"),
    "extra.npz": (
        {"t": np.arange(3.0), "q": np.zeros((1, 3, 1)), "v": 1},
        ValueError,
        "optionally p, xdot, trajectory; found",
    ),
    "text.npz": ("not an archive", ValueError, "not a readable .npz archive"),
    "strings.npz": ({"t": np.array(["a", "b"]), "q": np.zeros((1, 2, 1))}, ValueError, "real numbers"),
}
"""Files of no readable layout: name -> (content: text, arrays for numpy.savez or None for no file; error; what it
says). Files whose layout reads but whose contents are wrong are ``test_measured.BAD_CONTENTS``."""


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_are_named(tmp_path, name: str) -> None:
    assert_file_refused(tmp_path / name, *BAD_FILES[name])


def test_bad_sources_and_save_arguments() -> None:
    arrays = {"t": np.arange(3.0), "q": np.zeros((1, 3, 1))}
    with pytest.raises(TypeError, match="expected a path"):
        load_trajectories(3)
    with pytest.raises(TypeError, match="q must be an array of real numbers"):
        load_trajectories({"t": arrays["t"], "q": object()})
    with pytest.raises(TypeError, match="save_trajectories: expected a TrajectoryData"):
        save_trajectories(arrays, "x.npz")
    with pytest.raises(ValueError, match="save_trajectories: .*suffix '.h5'"):
        save_trajectories(oscillator_data(1, 3)[1], "x.h5")
