"""Data-parallel training: 2 gloo processes match one process with the same global batch; failures do not hang."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from nflows.flows import Flow

from canonflow import canonical_flow
from canonflow.distributed import init_distributed, shard
from canonflow.distributions import PhaseSpaceNormal
from canonflow.training import TrainConfig, train

GLOBAL_BATCH = 64
STEPS = 15


def _data() -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    q, p = torch.randn(2, 512, generator=generator, dtype=torch.float64)
    return torch.stack([q + 1.0, p + 0.5 * q**2], dim=1)


def _fit(distributed=None, fail_at: int | None = None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    flow = Flow(canonical_flow(1, blocks=2, hidden=8), PhaseSpaceNormal(1)).double()
    data = _data()

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        loss_fn.calls += 1
        if fail_at is not None and loss_fn.calls == fail_at and distributed is not None and distributed.rank == 1:
            raise ValueError("rank 1 crashed on purpose")
        batch = data[torch.randint(0, len(data), (GLOBAL_BATCH,), generator=generator)]
        return -flow.log_prob(shard(batch)).mean()

    loss_fn.calls = 0
    train(flow, loss_fn, TrainConfig(steps=STEPS, lr=1e-2, progress=False), distributed=distributed)
    return {key: value.clone() for key, value in flow.state_dict().items()}


def _worker(rank: int, port: int, out: str, fail_at: int | None) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    context = init_distributed(timeout_s=30.0)
    state = _fit(context, fail_at)
    if context.is_main:
        torch.save(state, out)
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_match_one_process(tmp_path) -> None:
    out = str(tmp_path / "state.pt")
    mp.spawn(_worker, args=(_free_port(), out, None), nprocs=2, join=True)
    parallel = torch.load(out, weights_only=True)
    single = _fit()
    assert parallel.keys() == single.keys()
    for key in single:
        torch.testing.assert_close(parallel[key], single[key], rtol=0, atol=1e-6, msg=key)
    assert any((single[key] - _initial()[key]).abs().max() > 1e-3 for key in single)  # training moved them


def _initial() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return Flow(canonical_flow(1, blocks=2, hidden=8), PhaseSpaceNormal(1)).double().state_dict()


def test_a_crashed_rank_fails_the_job_with_its_message(tmp_path) -> None:
    with pytest.raises(mp.ProcessRaisedException, match="rank 1 crashed on purpose"):
        mp.spawn(_worker, args=(_free_port(), str(tmp_path / "s.pt"), 3), nprocs=2, join=True)


def test_shard_needs_a_divisible_batch_only_when_distributed() -> None:
    batch = torch.arange(6.0)
    assert torch.equal(shard(batch), batch)


def test_init_distributed_explains_how_to_launch(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        init_distributed()
