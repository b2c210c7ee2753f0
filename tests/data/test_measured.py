"""Tests of :mod:`canonflow.data.measured`: ``load_trajectories`` turning read arrays into a ``TrajectoryData`` or
a ``TrajectoryRecord`` (momenta from positions and a mass, shared or own times, the contents it refuses)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from canonflow.data import load_trajectories, save_trajectories
from data.common import assert_file_refused, oscillator_data


def test_positions_only_need_a_mass(tmp_path) -> None:
    # x(t) = (t², t) on uneven times: second-order differences are exact for quadratics, so p = m·dq/dt exactly
    t = np.array([0.0, 0.1, 0.25, 0.3, 0.7, 1.0])
    q = np.stack([t**2, t], axis=-1)[None]  # (1, T, 2)
    with pytest.raises(ValueError, match=r"load_trajectories: the given arrays has positions q but no momenta p"):
        load_trajectories({"t": t, "q": q})
    data = load_trajectories({"t": t, "q": q}, mass=[2.0, 3.0])
    assert data.system_name == "data" and data.n == 2
    torch.testing.assert_close(data.states[0, :, 2:], torch.from_numpy(np.stack([4.0 * t, np.full_like(t, 3.0)], -1)))
    torch.testing.assert_close(data.derivatives[0, :, :2], torch.from_numpy(np.stack([2.0 * t, np.ones_like(t)], -1)))
    # a file of positions only: the same estimate, within the finite-difference error of p = q̇ (|q⁽³⁾| ≤ 3.1·2³)
    _, generated = oscillator_data()
    save_trajectories(generated, tmp_path / "q.csv", momenta=False)
    with pytest.raises(ValueError, match=r"q\.csv has positions q but no momenta p; pass mass=m"):
        load_trajectories(tmp_path / "q.csv")
    estimated = load_trajectories(tmp_path / "q.csv", mass=1.0)
    assert torch.equal(estimated.states[..., :2], generated.states[..., :2])
    assert (estimated.states[..., 2:] - generated.states[..., 2:]).abs().max() < 3.1 * 2.0**3 * 0.05**2 / 3


def test_a_csv_with_own_times_per_trajectory_needs_record(tmp_path: object) -> None:
    text = "trajectory,t,q1,p1\na,0.0,1.0,0.0\na,0.1,0.99,-0.1\na,0.25,0.97,-0.25\nb,0.0,0.0,1.0\nb,0.12,0.12,0.99\n"
    path = tmp_path / "record.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="'b' is sampled at other times.*record=True"):
        load_trajectories(path)
    record = load_trajectories(path, record=True)
    assert [t.tolist() for t in record.times] == [[0.0, 0.1, 0.25], [0.0, 0.12]]
    assert record.name == "record" and record.states[1].tolist() == [[0.0, 1.0], [0.12, 0.99]]
    with pytest.raises(ValueError, match="load_trajectories: max_gap applies to a record"):
        load_trajectories(path, max_gap=1.0)
    with pytest.raises(ValueError, match="load_trajectories: derivatives must be one of"):
        load_trajectories(path, record=True, derivatives="backward")
    (tmp_path / "twice.csv").write_text("trajectory,t,q1,p1\na,0.0,1,0\na,0.0,1,0\n")
    with pytest.raises(ValueError, match="trajectory 'a' must be strictly increasing"):
        load_trajectories(tmp_path / "twice.csv", record=True)


BAD_CONTENTS = {
    "times.csv": ("trajectory,t,q1\n0,0,1\n0,1,1\n1,0,1\n1,2,1\n", ValueError, "'1' is sampled at other times"),
    "once.csv": ("trajectory,t,q1,p1\n0,0,1,1\n", ValueError, "at least 2 samples"),
    "twice.csv": ("trajectory,t,q1,p1\n0,0,1,1\n0,0,1,1\n", ValueError, "strictly increasing"),
    "nan.csv": ("trajectory,t,q1,p1\n0,0,1,1\n0,1,nan,1\n", ValueError, "NaN"),
    "rank.npz": ({"t": np.arange(3.0), "q": np.zeros((3, 1))}, ValueError, r"q of shape \(num, T, n\)"),
    "length.npz": ({"t": np.arange(4.0), "q": np.zeros((1, 3, 1))}, ValueError, r"times of shape \(T,\) = \(3,\)"),
    "momenta.npz": (
        {"t": np.arange(3.0), "q": np.zeros((1, 3, 1)), "p": np.zeros((1, 3, 2))},
        ValueError,
        "expected p of the shape of q",
    ),
}
"""Readable files with wrong contents: name -> (content: text or arrays for numpy.savez; error; what it says)."""


@pytest.mark.parametrize("name", list(BAD_CONTENTS))
def test_bad_contents_are_named(tmp_path, name: str) -> None:
    assert_file_refused(tmp_path / name, *BAD_CONTENTS[name])


def test_bad_loader_arguments() -> None:
    arrays = {"t": np.arange(3.0), "q": np.zeros((1, 3, 1))}
    with pytest.raises(ValueError, match="length n=1, got 2"):
        load_trajectories(arrays, mass=[1.0, 2.0])
    with pytest.raises(ValueError, match="mass > 0"):
        load_trajectories(arrays, mass=-1.0)
    with pytest.raises(ValueError, match="noise_std"):
        load_trajectories({**arrays, "p": arrays["q"]}, noise_std=-0.1)
