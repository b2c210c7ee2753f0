"""``Batches``: a dataset's split, its seeded minibatch draw and each process's shard, in one place.

Every trainer that learns from data (densities, action-angle coordinates, Hamiltonians) draws minibatches the
same way: a held-out validation part split off once with a fixed seed, then per step ``G`` rows drawn with
replacement from the training generator that :func:`canonflow.training.train` owns (so a resumed run draws the
same batches), optionally augmented, and cut into this process's contiguous shard. With ``N`` processes the
shards of one global draw partition it, so ``N`` ranks follow the trajectory of one process with batch ``G``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from canonflow.distributed import DistributedContext, check_global_batch, shard
from canonflow.validation import check_positive_int

__all__ = ["Batches", "split"]

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def split(data: torch.Tensor, fraction: float, seed: int, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, validation)``: a random ``fraction`` of the rows of ``data`` held out, by a permutation drawn
    from ``torch.Generator().manual_seed(seed)`` (so the split is the same in every process and every resume)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"{who}: expected 0 < validation_fraction < 1, got {fraction!r}")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    cut = int(round(fraction * len(data)))
    if cut == 0 or cut == len(data):
        raise ValueError(f"{who}: {len(data)} samples are too few to split off a validation fraction of {fraction}")
    return data[order[cut:].to(data.device)], data[order[:cut].to(data.device)]


class Batches:
    """Seeded minibatches of the rows of ``data``, sharded across the processes of a ``distributed`` job.

    Args:
        data: the training rows ``(N, ...)``.
        batch_size: the global batch ``G`` (capped at ``N``); it must split evenly over the processes.
        augment: ``augment(rows, generator) -> rows``, applied to the global draw before sharding (e.g. fresh
            auxiliary momenta); it draws from the same generator, so every process augments identically.
        distributed: a ``canonflow.distributed`` context, or ``None`` in a single process.
        who: the caller's name, for errors.

    ``draw(generator)`` takes ``G`` row indices uniformly with replacement (``torch.randint``), the rows, their
    augmentation, then this process's shard.
    """

    def __init__(
        self,
        data: torch.Tensor,
        batch_size: int,
        *,
        augment: Augment | None = None,
        distributed: DistributedContext | None = None,
        who: str = "Batches",
    ) -> None:
        check_positive_int(batch_size, "batch_size", who)
        if not isinstance(data, torch.Tensor) or data.dim() == 0 or len(data) == 0:
            raise ValueError(f"{who}: expected a non-empty tensor of rows to draw batches from")
        self.data = data
        self.size = min(batch_size, len(data))
        check_global_batch(self.size, distributed, who)
        self.augment = augment
        self.distributed = distributed

    def __len__(self) -> int:
        return len(self.data)

    def draw(self, generator: torch.Generator) -> torch.Tensor:
        """This process's shard of a fresh global minibatch drawn with ``generator``."""
        index = torch.randint(0, len(self.data), (self.size,), generator=generator)
        rows = self.data[index.to(self.data.device)]
        if self.augment is not None:
            rows = self.augment(rows, generator)
        return rows if self.distributed is None else shard(rows)
