"""Launched by tests/test_distributed.py under torchrun: fit a tiny density; only rank 0 writes the result.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/torchrun_fit.py OUT [crash]``;
with ``crash``, rank 1 raises at its fifth training step.
"""

from __future__ import annotations

import sys

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from canonflow.density import fit_density
from canonflow.distributed import DistributedContext, close_distributed, context_from_environment
from canonflow.flow import CanonicalFlow
from canonflow.training import TrainConfig

GLOBAL_BATCH = 32


def fit(distributed: DistributedContext | None, crash: bool = False) -> dict[str, torch.Tensor]:
    """Fit ``CanonicalFlow.build(1, blocks=1, hidden=8)`` (with a ZeroCenter) to a sheared Gaussian; its final state."""
    generator = torch.Generator().manual_seed(5)
    q, p = torch.randn(2, 256, generator=generator, dtype=torch.float64)
    data = torch.stack([q, p + 0.5 * q**2], dim=1)
    torch.manual_seed(0)
    flow = CanonicalFlow.build(1, blocks=1, hidden=8, zero_center=True, base="normal").double()
    if crash and distributed is not None and distributed.rank == 1:
        steps = []

        def crash_at_fifth_step(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            steps.extend([1] if module.training else [])
            if len(steps) == 5:
                raise ValueError("rank 1 crashed on purpose")

        flow.transform.register_forward_pre_hook(crash_at_fifth_step)
    config = TrainConfig(steps=10, lr=1e-2, eval_every=5, progress=False)
    fit_density(flow, data, batch_size=GLOBAL_BATCH, config=config, distributed=distributed)
    return {key: value.clone() for key, value in flow.state_dict().items()}


@record
def main(out: str, crash: bool) -> None:
    torch.set_num_threads(1)
    context = context_from_environment(timeout_s=60.0)
    state = fit(context, crash)
    if context is None or context.is_main:
        rank, size = (0, 1) if context is None else (context.rank, context.world_size)
        torch.save({"rank": rank, "world_size": size, "state": state}, out)
    close_distributed(synchronize=True)


if __name__ == "__main__":
    main(sys.argv[1], crash=sys.argv[2:] == ["crash"])
