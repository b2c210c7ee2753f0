"""What the tests of ``canonflow.hamiltonian_learning`` share: a fixed set of trajectories to train on, and a
measured-style record of irregularly sampled trials with gaps."""

from __future__ import annotations

import numpy as np
import torch

from canonflow.data import TrajectoryData, TrajectoryRecord, load_trajectories, trajectories
from canonflow.systems import HarmonicOscillator


def box_data(
    system: object, noise_std: float = 0.0, num: int = 16, points: int = 9, dt: float = 0.05
) -> TrajectoryData:
    """Trajectories from initial states uniform on [-2, 2]², sampled every ``dt``: fixed set-up of the training
    tests, not shifted by the seed sweep (on one shifted draw the quartic's polynomial part ended at 5e-3, not 1e-3,
    after 400 steps)."""
    generator = torch.Generator().manual_seed(1)
    initial = 4.0 * torch.rand(num, 2, generator=generator, dtype=torch.float64) - 2.0
    return trajectories(system, num, (dt * (points - 1), points), initial=initial, noise_std=noise_std, seed=2)


OMEGA = 1.5
"""The angular frequency of the oscillator of :func:`irregular_record`."""


def irregular_record(noise_std: float = 0.0, dtype: torch.dtype = torch.float64, **options: object) -> TrajectoryRecord:
    """Four oscillator trials of unequal length, each sampled at its own jittered times around Δt = 0.05 (± 20 %)
    with one gap of 0.2 in the middle; one row per sample, as a measured file holds them."""
    system = HarmonicOscillator(1, omega=OMEGA)
    rng = np.random.default_rng(3)
    labels, t, q, p = [], [], [], []
    for trial, length in enumerate((13, 17, 21, 25)):
        steps = 0.05 * (1.0 + 0.4 * (rng.random(length - 1) - 0.5))
        steps[length // 2] = 0.2  # a gap
        times = np.concatenate([[0.0], np.cumsum(steps)])
        initial = torch.tensor([[1.0 - 0.5 * trial, 0.5 * trial - 0.7]], dtype=torch.float64)
        data = trajectories(system, 1, times, initial=initial, noise_std=noise_std, seed=trial)
        labels += [f"trial{trial}"] * length
        t.append(times)
        q.append(data.states[0, :, 0].numpy())
        p.append(data.states[0, :, 1].numpy())
    arrays = {"trajectory": np.array(labels), "t": np.concatenate(t), "q": np.concatenate(q), "p": np.concatenate(p)}
    return load_trajectories(arrays, record=True, dtype=dtype, **options)
