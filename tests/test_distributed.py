"""Data-parallel training: 2 gloo processes match one process with the same global batch; failures do not hang.

The trainers (``train``, ``fit_density``, ``fit_variational``, ``ActionAngleFlow.fit`` on trajectories and on
points) run on 2 processes spawned with ``torch.multiprocessing`` and once in this process with the same global
batch; the final float64 parameters must agree to 1e-6. A real ``torchrun`` launch of ``tests/torchrun_fit.py``
checks the launcher, ``context_from_environment`` and rank-0-only output.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torchrun_fit
from filelock import FileLock
from nflows.transforms import CompositeTransform

import canonflow.training
from canonflow import canonical_flow
from canonflow.action_angle import ActionAngleFlow, AngleLoss, HamiltonianLoss, TrajectoryLoss
from canonflow.density import fit_density, fit_variational
from canonflow.distributed import (
    DistributedContext,
    close_distributed,
    init_distributed,
    launch,
    shard,
    torchrun_command,
)
from canonflow.distributions import PhaseSpaceGaussian
from canonflow.flow import CanonicalFlow
from canonflow.training import TrainConfig, train

# every test here starts processes that find each other over local ports: one xdist group runs them one at a
# time (with `canonflow --nproc 2` of tests/cli/test_run.py), so no two jobs race for a port another has just released
pytestmark = pytest.mark.xdist_group("multi-process")
GLOBAL_BATCH = 64
STEPS = 15
Outcome = dict[str, object]


def _data() -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    q, p = torch.randn(2, 512, generator=generator, dtype=torch.float64)
    return torch.stack([q + 1.0, p + 0.5 * q**2], dim=1)


def _fit(distributed: DistributedContext | None, directory: Path | None = None, fail_at: int | None = None) -> Outcome:
    """``train`` on a flow with two ZeroCenters, on the data and after a trained block (so that gradients flow
    back through the all-reduced batch mean); rank 1 raises at call ``fail_at`` of the loss."""
    torch.manual_seed(0)
    transform = CompositeTransform([canonical_flow(1, blocks=1, hidden=8), canonical_flow(1, blocks=1, hidden=8)])
    flow = CanonicalFlow(transform, PhaseSpaceGaussian.standard(1)).double()
    initial, sizes = _state(flow), set()
    _record_training_batches(flow.transform, sizes)
    data = _data()

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        loss_fn.calls += 1
        if fail_at is not None and loss_fn.calls == fail_at and distributed is not None and distributed.rank == 1:
            raise ValueError("rank 1 crashed on purpose")
        batch = data[torch.randint(0, len(data), (GLOBAL_BATCH,), generator=generator)]
        return -flow.log_prob(shard(batch)).mean()

    loss_fn.calls = 0
    train(flow, loss_fn, TrainConfig(steps=STEPS, lr=1e-2, progress=False), distributed=distributed)
    return {"initial": initial, "final": _state(flow), "batches": sizes}


def _crash_worker(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    context = init_distributed(timeout_s=30.0)
    _fit(context, fail_at=3)
    close_distributed()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_crashed_rank_fails_the_job_with_its_message() -> None:
    with pytest.raises(mp.ProcessRaisedException, match="rank 1 crashed on purpose"):
        mp.spawn(_crash_worker, args=(_free_port(),), nprocs=2, join=True)


def test_shard_needs_a_divisible_batch_only_when_distributed() -> None:
    batch = torch.arange(6.0)
    assert torch.equal(shard(batch), batch)


def test_init_distributed_explains_how_to_launch(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        init_distributed()


# ---------------------------------------------------------------------------------------------- the fit functions


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def _record_training_batches(module: torch.nn.Module, sizes: set[int]) -> None:
    """Collect the leading dimension of every training-mode input of ``module`` into ``sizes``."""

    def hook(layer: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if layer.training:
            sizes.add(inputs[0].shape[0])

    module.register_forward_pre_hook(hook)


def _config(checkpoint: Path | None = None) -> TrainConfig:
    return TrainConfig(steps=STEPS, lr=1e-2, eval_every=5, progress=False, checkpoint=checkpoint and str(checkpoint))


def _fit_density(distributed: DistributedContext | None, directory: Path) -> Outcome:
    """Configuration data (momenta augmented per global batch), a ZeroCenter in the flow, validation on."""
    torch.manual_seed(0)
    flow = CanonicalFlow.build(1, blocks=1, hidden=8, zero_center=True, base="normal").double()
    initial, sizes = _state(flow), set()
    _record_training_batches(flow.transform, sizes)
    checkpoint = None if distributed is None else directory / f"density-rank{distributed.rank}.pt"
    fit_density(flow, _data()[:, :1], batch_size=GLOBAL_BATCH, config=_config(checkpoint), distributed=distributed)
    return {"initial": initial, "final": _state(flow), "batches": sizes}


def _fit_variational(gradient: str) -> Callable[[DistributedContext | None, Path], Outcome]:
    def run(distributed: DistributedContext | None, directory: Path) -> Outcome:
        torch.manual_seed(0)
        flow = CanonicalFlow.build(1, blocks=1, hidden=8, base="oscillator").double()
        initial, sizes = _state(flow), set()

        def energy(x: torch.Tensor) -> torch.Tensor:
            sizes.add(x.shape[0])
            return 0.5 * x[:, 1] ** 2 + 0.5 * x[:, 0] ** 2 + 0.25 * x[:, 0] ** 4

        options = {"batch_size": GLOBAL_BATCH, "config": _config(), "gradient": gradient}
        fit_variational(flow, energy, distributed=distributed, **options)
        return {"initial": initial, "final": _state(flow), "batches": sizes}

    return run


def _trajectories() -> tuple[torch.Tensor, torch.Tensor]:
    """20 oscillator orbits through the canonical shear ``p -> p + 0.3 q²``, 16 times each: ``(20, 16, 2)``."""
    generator = torch.Generator().manual_seed(4)
    amplitude = 0.5 + torch.rand(20, 1, generator=generator, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(20, 1, generator=generator, dtype=torch.float64)
    times = torch.linspace(0.0, 3.0, 16, dtype=torch.float64)
    q, p = amplitude * torch.cos(times + phase), -amplitude * torch.sin(times + phase)
    return torch.stack([q, p + 0.3 * q**2], dim=-1), times


def _fit_action_angle(normalization: str) -> Callable[[DistributedContext | None, Path], Outcome]:
    def run(distributed: DistributedContext | None, directory: Path) -> Outcome:
        torch.manual_seed(0)
        model = ActionAngleFlow(1, blocks=1, hidden=8)
        initial, sizes = _state(model), set()
        _record_training_batches(model, sizes)
        trajectories, times = _trajectories()
        options = {"times_per_batch": 8, "loss": TrajectoryLoss(normalization) + 0.1 * AngleLoss()}
        model.fit(trajectories, times, batch_size=8, config=_config(), distributed=distributed, **options)
        return {"initial": initial, "final": _state(model), "batches": sizes}

    return run


def _fit_hamiltonian(distributed: DistributedContext | None, directory: Path) -> Outcome:
    torch.manual_seed(0)
    model = ActionAngleFlow(1, blocks=1, hidden=8)
    initial, sizes = _state(model), set()
    _record_training_batches(model, sizes)
    states = torch.randn(40, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)

    def hamiltonian(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x[:, 1] ** 2 + 0.5 * x[:, 0] ** 2 + 0.1 * x[:, 0] ** 4

    model.fit(states, loss=HamiltonianLoss(hamiltonian, 8), batch_size=8, config=_config(), distributed=distributed)
    return {"initial": initial, "final": _state(model), "batches": sizes}


# name: (fit, global batch, whether each rank sees only its shard of it)
FITS: dict[str, tuple[Callable[[DistributedContext | None, Path], Outcome], int, bool]] = {
    "train": (_fit, GLOBAL_BATCH, True),
    "fit_density": (_fit_density, GLOBAL_BATCH, True),
    "fit_variational(path)": (_fit_variational("path"), GLOBAL_BATCH, True),
    "fit_variational(total)": (_fit_variational("total"), GLOBAL_BATCH, True),
    "ActionAngleFlow.fit": (_fit_action_angle("spread"), 8, True),
    "ActionAngleFlow.fit(across)": (_fit_action_angle("across"), 8, False),
    "ActionAngleFlow.fit(HamiltonianLoss)": (_fit_hamiltonian, 8, False),
}


def _steps_under_a_time_limit(context: DistributedContext) -> list[int]:
    """``train`` with a 0.2 s time limit while rank 1's clock runs 3× fast: the steps each rank ran."""
    torch.manual_seed(0)
    flow = CanonicalFlow(canonical_flow(1, blocks=1, hidden=8), PhaseSpaceGaussian.standard(1)).double()
    data = _data()

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        time.sleep(0.01)
        return -flow.log_prob(shard(data[torch.randint(0, len(data), (GLOBAL_BATCH,), generator=generator)])).mean()

    clock = time.perf_counter
    if context.rank == 1:
        canonflow.training.time = types.SimpleNamespace(perf_counter=lambda: 3 * clock())
    try:
        result = train(flow, loss_fn, TrainConfig(steps=200, time_limit=0.2, progress=False), distributed=context)
    finally:
        canonflow.training.time = time
    steps = [0, 0]
    torch.distributed.all_gather_object(steps, result.steps)
    return steps


def _fits_worker(rank: int, port: int, directory: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    context = init_distributed(timeout_s=30.0)
    outcomes = {name: fit(context, Path(directory)) for name, (fit, _, _) in FITS.items()}
    outcomes["time_limit_steps"] = _steps_under_a_time_limit(context)
    if context.is_main:
        torch.save(outcomes, Path(directory) / "outcomes.pt")
    close_distributed()


@pytest.fixture(scope="module")
def two_process_fits(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Path, dict[str, Outcome]]:
    """Every fit of ``FITS`` run once on 2 spawned gloo processes: the directory they wrote to, rank 0's outcomes.

    Once per test session: pytest-xdist workers share the folder above their own temporary folders, and the first
    worker to take the lock runs the fits there for all of them (the tests only read what the fits wrote)."""
    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    directory = shared / "two-process-fits"
    with FileLock(str(shared / "two-process-fits.lock")):
        if not (directory / "outcomes.pt").is_file():
            directory.mkdir(exist_ok=True)
            try:
                mp.spawn(_fits_worker, args=(_free_port(), str(directory)), nprocs=2, join=True)
            except mp.ProcessExitedException:  # killed by a signal (a lost port race), not a Python error: once more
                mp.spawn(_fits_worker, args=(_free_port(), str(directory)), nprocs=2, join=True)
    return directory, torch.load(directory / "outcomes.pt", weights_only=False)


@pytest.mark.parametrize("name", FITS)
def test_two_process_fit_matches_one_process_with_the_same_global_batch(
    name: str, two_process_fits: tuple[Path, dict[str, Outcome]], tmp_path: Path
) -> None:
    fit, batch, sharded = FITS[name]
    parallel = two_process_fits[1][name]
    single = fit(None, tmp_path)
    assert single["batches"] == {batch}
    assert parallel["batches"] == ({batch // 2} if sharded else {batch})
    assert parallel["final"].keys() == single["final"].keys()
    for key in single["final"]:
        torch.testing.assert_close(parallel["final"][key], single["final"][key], rtol=0, atol=1e-6, msg=key)
    moved = torch.cat([(single["final"][key] - single["initial"][key]).flatten() for key in single["final"]])
    assert moved.abs().max() > 1e-3  # training changed the parameters


def test_only_rank_0_writes_the_checkpoint(two_process_fits: tuple[Path, dict[str, Outcome]]) -> None:
    directory, outcomes = two_process_fits
    assert not (directory / "density-rank1.pt").exists()
    checkpoint = torch.load(directory / "density-rank0.pt", weights_only=False)
    assert checkpoint["step"] == STEPS
    for key, value in outcomes["fit_density"]["final"].items():
        assert torch.equal(checkpoint["model"][key], value), key


def test_all_ranks_stop_at_the_same_step_when_their_clocks_disagree(
    two_process_fits: tuple[Path, dict[str, Outcome]],
) -> None:
    steps = two_process_fits[1]["time_limit_steps"]
    assert steps[0] == steps[1] and 1 <= steps[0] < 200, steps


@pytest.mark.parametrize(
    "fit",
    [
        lambda context: fit_density(
            CanonicalFlow.build(1, blocks=1), torch.randn(100, 2), batch_size=33, distributed=context
        ),
        lambda context: fit_variational(
            CanonicalFlow.build(1, blocks=1), lambda x: x.pow(2).sum(1), batch_size=33, distributed=context
        ),
        lambda context: ActionAngleFlow(1, blocks=1).fit(_trajectories()[0], batch_size=7, distributed=context),
    ],
    ids=["fit_density", "fit_variational", "ActionAngleFlow.fit"],
)
def test_a_global_batch_that_does_not_split_over_the_ranks_is_refused(fit) -> None:
    context = DistributedContext(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"), backend="gloo")
    with pytest.raises(
        ValueError,
        match=r"^(fit_density|fit_variational|ActionAngleFlow.fit): the global batch of "
        r"\d+ is not divisible by the world size 2",
    ):
        fit(context)


# ---------------------------------------------------------------------------------------------- torchrun
def test_torchrun_command_runs_the_module_without_the_launch_flag() -> None:
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "3"]
    argv = ["action-angle", "--nproc", "3", "--system", "pendulum", "--nproc=3", "--quick"]
    assert torchrun_command(3, argv) == [*prefix, "-m", "canonflow", "action-angle", "--system", "pendulum", "--quick"]
    assert torchrun_command(3, ["script.py", "out"], module=None) == [*prefix, "script.py", "out"]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="nproc"):
            torchrun_command(bad, ["demo"])
    with pytest.raises(ValueError, match="script"):
        torchrun_command(2, [], module=None)


def test_torchrun_launch_matches_one_process_and_only_rank_0_writes(tmp_path: Path, monkeypatch) -> None:
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "result.pt"
    assert launch(2, [torchrun_fit.__file__, str(out)], module=None) == 0
    result = torch.load(out, weights_only=True)
    assert (result["rank"], result["world_size"]) == (0, 2)
    single = torchrun_fit.fit(None)
    for key in single:
        torch.testing.assert_close(result["state"][key], single[key], rtol=0, atol=1e-6, msg=key)


def test_a_crashed_rank_fails_the_torchrun_job_with_its_message(tmp_path: Path, monkeypatch, capfd) -> None:
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "result.pt"
    assert launch(2, [torchrun_fit.__file__, str(out), "crash"], module=None) != 0
    summary = capfd.readouterr().err.split("Root Cause")[-1]  # torchrun's report of the first failure
    assert "rank      : 1" in summary and "ValueError: rank 1 crashed on purpose" in summary
    assert not out.exists()
