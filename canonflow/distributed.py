"""Data-parallel training on PyTorch's own engine (``torch.distributed``), launched with ``torchrun``.

``init_distributed()`` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``), starts the process group (gloo on CPU, nccl on GPU, chosen automatically) with a timeout so
that a crashed rank fails the job instead of hanging it, and returns a ``DistributedContext``. Pass it to
``canonflow.training.train``: the model is wrapped in ``DistributedDataParallel``, and only rank 0 writes
checkpoints and shows progress.

Data: every rank draws the same *global* minibatch from the same generator and keeps its own contiguous
shard (``shard``), so a run on N processes with global batch G follows the same trajectory as one process
with batch G. ``ZeroCenter`` all-reduces its batch means across ranks in training mode (like
``SyncBatchNorm``), which keeps that equivalence exact.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "DistributedContext",
    "init_distributed",
    "context_from_environment",
    "close_distributed",
    "torchrun_command",
    "launch",
    "check_global_batch",
    "shard",
    "all_reduce_mean",
    "all_reduce_sum",
    "is_main_process",
    "world_size",
]

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a distributed job: its ``rank`` of ``world_size``, and its ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes files and logs."""
        return self.rank == 0


def init_distributed(backend: str | None = None, timeout_s: float = 300.0) -> DistributedContext:
    """Start the process group from torchrun's environment variables and return this rank's context.

    ``backend`` defaults to ``nccl`` when CUDA is available and ``gloo`` otherwise. Collective operations
    that wait longer than ``timeout_s`` (a crashed or stuck rank) raise instead of hanging.
    """
    missing = [name for name in _TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"init_distributed: environment variables {missing} are not set; launch with "
            "`torchrun --nproc_per_node N -m canonflow ...`"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, device, backend)


def context_from_environment(timeout_s: float = 300.0) -> DistributedContext | None:
    """This process's ``DistributedContext`` when torchrun started it, else ``None`` (a plain single process).

    "Started by torchrun" means that ``RANK`` and ``WORLD_SIZE`` are set; the process group is then started
    with ``init_distributed(timeout_s=timeout_s)`` (also for a world of one, so the code path is the same).
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return init_distributed(timeout_s=timeout_s)


def close_distributed(synchronize: bool = False) -> None:
    """Destroy the process group if one is running (call once when a distributed job is done). ``synchronize``
    (on a successful run, which every rank reaches): wait at a barrier first, so that no rank tears its group
    down while a peer's communication threads still work (Gloo can abort a process at exit otherwise)."""
    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def torchrun_command(nproc: int, argv: Sequence[str], module: str | None = "canonflow") -> list[str]:
    """The command that runs ``python -m module *argv`` as ``nproc`` processes on this machine under torchrun.

    ``[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", N, "-m", module,
    *argv]``; with ``module=None``, ``argv[0]`` is a script to run instead. ``--standalone`` lets torchrun pick
    a free local rendezvous port. Any ``--nproc N`` / ``--nproc=N`` in ``argv`` (the command line's own launch
    flag) is dropped, so that the launched processes do not launch again.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"torchrun_command: expected nproc to be a positive int, got {nproc!r}")
    args: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    if module is None and not args:
        raise ValueError("torchrun_command: with module=None, argv must start with the script to run")
    target = ["-m", module] if module is not None else []
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        *target,
        *args,
    ]


def launch(nproc: int, argv: Sequence[str], module: str | None = "canonflow") -> int:
    """Run ``torchrun_command(nproc, argv, module)`` to completion and return its exit status.

    torchrun stops the other processes when one fails, prints which rank failed and why, and exits
    non-zero, so a failed job returns a non-zero status instead of hanging.
    """
    return subprocess.run(torchrun_command(nproc, argv, module), check=False).returncode


def world_size() -> int:
    """The number of processes in the job (1 when ``torch.distributed`` is not initialized)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process is rank 0 (always true outside a distributed job)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def check_global_batch(batch: int, distributed: DistributedContext | None, who: str) -> None:
    """Raise a ``ValueError`` naming ``who`` unless a global batch of ``batch`` splits evenly over the ranks.

    Equal shards make the average of the ranks' shard-mean gradients (what DDP computes) equal the gradient of
    the global-batch mean.
    """
    if distributed is not None and batch % distributed.world_size != 0:
        raise ValueError(
            f"{who}: the global batch of {batch} is not divisible by the world size {distributed.world_size}; "
            f"use a batch size that is a multiple of {distributed.world_size}"
        )


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of a global minibatch ``(G, ...)``: rows ``[r G/N, (r + 1) G/N)``.

    Outside a distributed job it returns ``batch`` unchanged. ``G`` must be divisible by the world size, so
    that averaging the ranks' gradients equals the gradient of the global-batch mean.
    """
    size = world_size()
    if size == 1:
        return batch
    if batch.shape[0] % size != 0:
        raise ValueError(f"shard: global batch of {batch.shape[0]} is not divisible by the world size {size}")
    per_rank = batch.shape[0] // size
    rank = dist.get_rank()
    return batch[rank * per_rank : (rank + 1) * per_rank]


def all_reduce_mean(value: float | torch.Tensor) -> float:
    """The mean of a number over all ranks (the number itself outside a distributed job)."""
    if world_size() == 1:
        return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.as_tensor(value, dtype=torch.float64).detach().clone().to(device)
    dist.all_reduce(tensor)
    return tensor.item() / world_size()


class _AllReduceSum(torch.autograd.Function):
    """``y = Σ_r x_r`` on every rank; backward ``∂/∂x_r = Σ_r' ∂L_r'/∂y``, the gradient of the ranks' summed loss."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all ranks, differentiable (``tensor`` itself outside a distributed job).

    The backward pass all-reduces the incoming gradients, so that after DDP's averaging each rank's parameters
    receive the gradient of the mean of all ranks' losses, as in ``torch.nn.SyncBatchNorm``.
    """
    return tensor if world_size() == 1 else _AllReduceSum.apply(tensor)
