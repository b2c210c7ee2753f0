"""A small, resumable training loop shared by every canonflow application.

``train`` runs Adam with a cosine learning-rate schedule, optional gradient clipping, periodic validation
with early stopping (restoring the best weights), a tqdm progress bar, and atomic checkpoints from which a
run resumes bit-for-bit: minibatches must be drawn from the ``torch.Generator`` handed to ``loss_fn``, whose
state is checkpointed with the model, optimizer and schedule.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from canonflow.checkpoint import CheckpointError, atomic_save, read_checkpoint
from canonflow.distributed import DistributedContext, all_reduce_mean

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "train"]

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint (if any) is kept."""


@dataclass
class TrainConfig:
    """Settings of ``train``.

    ``steps`` optimizer steps at learning rate ``lr`` (cosine-decayed to ``lr * final_lr_fraction`` when
    ``schedule == "cosine"``); validation every ``eval_every`` steps when a ``validate`` callable is given, and
    early stopping after ``patience`` validations without improvement (``None``: never); a checkpoint every
    ``checkpoint_every`` steps and at the end when ``checkpoint`` is a path; ``resume`` continues from it.
    ``time_limit`` (seconds) stops training early (in a distributed job when the ranks' mean elapsed time exceeds
    it, so that all ranks stop at the same step). ``progress`` shows a tqdm bar when stderr is a terminal.
    """

    steps: int = 1000
    lr: float = 1e-3
    schedule: str = "cosine"
    final_lr_fraction: float = 0.01
    grad_clip: float | None = None
    weight_decay: float = 0.0
    eval_every: int = 100
    patience: int | None = None
    checkpoint: str | None = None
    checkpoint_every: int = 500
    resume: bool = False
    seed: int = 0
    time_limit: float | None = None
    progress: bool = True
    description: str = "training"

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.eval_every <= 0 or self.checkpoint_every <= 0:
            raise ValueError("TrainConfig: steps, eval_every and checkpoint_every must be positive")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig: expected lr > 0, got {self.lr}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"TrainConfig: schedule must be 'cosine' or 'constant', got {self.schedule!r}")


@dataclass
class TrainResult:
    """What ``train`` did: the losses per step, validation values, the best one, steps run and time taken."""

    losses: list[float] = field(default_factory=list)
    validation: list[tuple[int, float]] = field(default_factory=list)
    best_validation: float = math.inf
    best_step: int = -1
    steps: int = 0
    seconds: float = 0.0
    stopped_early: bool = False


def _schedule(config: TrainConfig) -> Callable[[int], float]:
    if config.schedule == "constant":
        return lambda step: 1.0
    floor = config.final_lr_fraction
    return lambda step: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps))


class _LossModule(torch.nn.Module):
    """Makes ``loss_fn(generator)`` the forward pass of a module owning ``model``, so DDP can wrap it."""

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[[torch.Generator], torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, generator: torch.Generator) -> torch.Tensor:
        return self.loss_fn(generator)


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Generator], torch.Tensor],
    config: TrainConfig,
    validate: Callable[[], float] | None = None,
    parameters: list[torch.nn.Parameter] | None = None,
    distributed: DistributedContext | None = None,
) -> TrainResult:
    """Minimize ``loss_fn(generator)`` over ``model``'s parameters (or ``parameters``) and return a ``TrainResult``.

    ``loss_fn`` draws its minibatch from the generator it receives, so that a resumed run sees the same
    batches as an uninterrupted one. ``validate()`` returns a number to minimize (evaluated without grad, in
    eval mode); with it, the best weights seen are restored at the end. A NaN/Inf loss raises
    ``TrainingDiverged`` naming the step, leaving the last good checkpoint in place; Ctrl-C writes a checkpoint
    and re-raises.

    With a ``distributed`` context (see ``canonflow.distributed``) the loss runs inside
    ``DistributedDataParallel``, which averages gradients over ranks; ``loss_fn`` should keep its rank's share
    of the global minibatch with ``canonflow.distributed.shard``. Losses and validation values are averaged
    over ranks, and only rank 0 writes checkpoints and shows progress. Every decision to stop (divergence, early
    stopping, time limit) is taken on all-reduced numbers, so all ranks stop at the same step.
    """
    params = list(model.parameters()) if parameters is None else parameters
    main = distributed is None or distributed.is_main
    step_loss = _LossModule(model, loss_fn)
    if distributed is not None and distributed.world_size > 1:
        step_loss = DistributedDataParallel(step_loss, find_unused_parameters=True)
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult()
    best_state = None
    start_step = 0
    if config.resume and config.checkpoint and Path(config.checkpoint).is_file():
        state = read_checkpoint(config.checkpoint)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"{config.checkpoint} does not fit this model/optimizer: {error}") from error
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        best_state = state["best_model"]
        start_step = int(state["step"])
        result = TrainResult(**state["result"])
        log.info("resumed from %s at step %d", config.checkpoint, start_step)

    def save(step: int) -> None:
        if config.checkpoint is None or not main:
            return
        payload = {
            "format": "canonflow",
            "kind": "training-state",
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "best_model": best_state,
            "result": asdict(result),
            "config": asdict(config),
        }
        atomic_save(payload, config.checkpoint)

    def run_validation(step: int) -> bool:
        nonlocal best_state
        model.eval()
        with torch.no_grad():
            value = all_reduce_mean(validate())
        model.train()
        result.validation.append((step, value))
        if value < result.best_validation:
            result.best_validation, result.best_step = value, step
            best_state = copy.deepcopy(model.state_dict())
        return config.patience is not None and len(result.validation) - 1 - _index_of_best(result) > config.patience

    began = time.perf_counter() - result.seconds
    bar = tqdm(
        range(start_step, config.steps),
        initial=start_step,
        total=config.steps,
        desc=config.description,
        disable=not (main and config.progress and sys.stderr.isatty() and os.environ.get("CI") is None),
    )
    model.train()
    step = start_step
    try:
        for step in bar:
            loss = step_loss(generator)
            mean_loss = all_reduce_mean(loss)
            if not math.isfinite(mean_loss):
                raise TrainingDiverged(
                    f"{config.description}: loss became {mean_loss} at step {step}; "
                    f"last good checkpoint kept at {config.checkpoint}"
                    if config.checkpoint
                    else f"{config.description}: loss became {mean_loss} at step {step}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            result.losses.append(mean_loss)
            result.steps = step + 1
            result.seconds = time.perf_counter() - began
            bar.set_postfix(loss=f"{mean_loss:.4g}")
            done = step + 1
            stop = validate is not None and done % config.eval_every == 0 and run_validation(done)
            if config.time_limit is not None and all_reduce_mean(result.seconds) > config.time_limit:
                log.info("%s: time limit of %.0f s reached at step %d", config.description, config.time_limit, done)
                stop = True
            if stop:
                result.stopped_early = True
                break
            if done % config.checkpoint_every == 0:
                save(done)
    except KeyboardInterrupt:
        save(result.steps)
        log.warning("interrupted at step %d; checkpoint written to %s", result.steps, config.checkpoint)
        raise
    finally:
        bar.close()
    if validate is not None and (not result.validation or result.validation[-1][0] != result.steps):
        run_validation(result.steps)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - began
    save(result.steps)
    return result


def _index_of_best(result: TrainResult) -> int:
    values = [value for _, value in result.validation]
    return values.index(min(values))
