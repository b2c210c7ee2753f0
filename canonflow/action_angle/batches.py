"""The data of :meth:`ActionAngleFlow.fit <canonflow.action_angle.ActionAngleFlow.fit>`: split, seeded minibatches of
trajectories and time windows, sharding, and the fixed batches of validation and of the L-BFGS polish.
"""

from __future__ import annotations

import torch

from canonflow.action_angle.losses import ActionAngleLoss, TrajectoryBatch
from canonflow.batches import split
from canonflow.distributed import DistributedContext, check_global_batch, shard
from canonflow.losses import Loss
from canonflow.validation import check_points, check_positive_int, check_times, check_trajectories

__all__ = ["TrajectoryBatches", "POLISH_BATCH", "VALIDATION_SEED"]

POLISH_BATCH = 128
"""Training trajectories in the full batch of the L-BFGS polish."""
VALIDATION_SEED = 12345
"""The seed of the fixed draws (angles of :class:`~canonflow.action_angle.HamiltonianLoss`) of validation."""


class TrajectoryBatches:
    """Minibatches of trajectories ``(num_traj, T, 2n)`` (or of points ``(N, 2n)``) for a ``loss``.

    A ``validation_fraction`` of the data (at least 2 trajectories) is held out by a permutation drawn with seed
    0 (:func:`canonflow.batches.split`). :meth:`draw` takes ``min(batch_size, #training trajectories)`` distinct
    training trajectories (a ``torch.randperm`` from the training generator, so runs resume bit for bit) and,
    with ``times_per_batch``, a window of that many consecutive samples at a random start; the batch's ``steps``
    are the window's ``Δt`` (from ``times``, uniform without them). In a ``distributed`` job every rank draws the
    same global batch and, when the ``loss`` is separable (a mean over trajectories, see
    :class:`~canonflow.losses.Loss`), keeps its contiguous shard (the global batch must split evenly); otherwise
    every rank evaluates the whole batch (same result, no speed-up).

    Points ``(N, 2n)`` are trajectories of one sample, for losses that do not read the time axis (everything but
    :class:`~canonflow.action_angle.TrajectoryLoss` and :class:`~canonflow.action_angle.AngleLoss`). Data are cast
    to ``dtype``. Errors name ``who``.
    """

    def __init__(
        self,
        data: torch.Tensor,
        times: torch.Tensor | None,
        loss: Loss,
        *,
        n: int,
        dtype: torch.dtype,
        batch_size: int,
        times_per_batch: int | None,
        validation_fraction: float,
        distributed: DistributedContext | None,
        who: str,
    ) -> None:
        needs_time = any(
            not isinstance(term, ActionAngleLoss) or term.needs_time for weight, term in loss.terms() if weight != 0
        )
        if isinstance(data, torch.Tensor) and data.dim() == 2 and not needs_time:
            check_points(data, n, who)
            if times is not None:
                raise ValueError(f"{who}: times are for trajectories (num_traj, T, 2n), not points (N, 2n)")
            data, self.windowed = data.unsqueeze(1), False
        else:
            check_trajectories(data, n, who, min_times=2 if needs_time else 1)
            self.windowed = True
        data = data.detach().to(dtype)
        self.steps = None if times is None else torch.diff(check_times(times, data.shape[1], who, dtype))
        check_positive_int(batch_size, "batch_size", who)
        length = data.shape[1]
        self.window = length
        if times_per_batch is not None:
            if check_positive_int(times_per_batch, "times_per_batch", who) < 2:
                raise ValueError(f"{who}: times_per_batch must be at least 2, got {times_per_batch}")
            self.window = min(times_per_batch, length)
        if isinstance(validation_fraction, bool) or not 0.0 < float(validation_fraction) < 1.0:
            raise ValueError(f"{who}: validation_fraction must be in (0, 1), got {validation_fraction}")
        held = max(2, round(validation_fraction * len(data)))
        if len(data) - held < 2:
            raise ValueError(f"{who}: need at least 4 trajectories (2 to train, 2 to validate), got {len(data)}")
        self.train, held_out = split(data, held / len(data), 0, who)
        self.size = min(batch_size, len(self.train))
        if self.size < 2:
            raise ValueError(f"{who}: need at least 2 training trajectories per batch, got {len(self.train)}")
        self.sharded = distributed is not None and loss.separable
        if self.sharded:
            check_global_batch(self.size, distributed, who)
        self.validation = TrajectoryBatch(held_out, self.steps, seed=VALIDATION_SEED)

    def draw(self, generator: torch.Generator) -> TrajectoryBatch:
        """This process's part of a fresh minibatch drawn with ``generator`` (which sampling losses draw from too)."""
        chosen = self.train[torch.randperm(len(self.train), generator=generator)[: self.size]]
        start = 0
        if self.windowed:
            start = int(torch.randint(0, self.train.shape[1] - self.window + 1, (1,), generator=generator))
        steps = None if self.steps is None else self.steps[start : start + self.window - 1]
        if self.sharded:
            chosen = shard(chosen)
        return TrajectoryBatch(chosen[:, start : start + self.window], steps, generator)

    def polish(self, seed: int) -> TrajectoryBatch:
        """The full batch of the L-BFGS polish: ``POLISH_BATCH`` whole-length training trajectories chosen by a
        permutation drawn with ``seed``, with fixed draws from ``seed + 1``."""
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(seed))
        return TrajectoryBatch(self.train[order[:POLISH_BATCH]], self.steps, seed=seed + 1)
