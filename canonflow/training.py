"""A small, resumable training loop shared by every canonflow application.

``train`` runs two optimizer stages. Adam on minibatches, with a cosine learning-rate schedule, optional
gradient clipping, periodic validation with early stopping (restoring the best weights), a tqdm progress bar,
and atomic checkpoints from which a run resumes bit-for-bit: minibatches must be drawn from the
``torch.Generator`` handed to ``loss_fn``, whose state is checkpointed with the model, optimizer and schedule.
Then, with ``TrainConfig.polish_steps > 0``, full-batch L-BFGS on a deterministic objective (the "polish"),
under the same best-weight tracking and time limit.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from canonflow.checkpoint import CheckpointError, atomic_save, read_checkpoint
from canonflow.compiling import compile as compile_model
from canonflow.distributed import DistributedContext, all_reduce_mean

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "loss_curve", "train"]

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
    ``polish_steps`` L-BFGS steps follow Adam when ``train`` is given a full-batch ``objective`` (the time limit
    covers both stages). ``compile``: compile the model in place before the first step (:func:`canonflow.compile`;
    ``True``, or a dict of ``torch.compile`` options such as ``{"mode": "max-autotune"}``).
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
    polish_steps: int = 0
    compile: bool | dict[str, Any] = False

    def __post_init__(self) -> None:
        if not isinstance(self.compile, (bool, dict)):
            raise TypeError(
                f"TrainConfig: compile must be a bool or a dict of torch.compile options, got {self.compile!r}"
            )
        if self.steps <= 0 or self.eval_every <= 0 or self.checkpoint_every <= 0:
            raise ValueError("TrainConfig: steps, eval_every and checkpoint_every must be positive")
        if isinstance(self.polish_steps, bool) or not isinstance(self.polish_steps, int) or self.polish_steps < 0:
            raise ValueError(f"TrainConfig: polish_steps must be an int >= 0, got {self.polish_steps!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"TrainConfig: expected a finite lr > 0, got {self.lr}")
        if self.time_limit is not None and not (self.time_limit >= 0 and math.isfinite(self.time_limit)):
            raise ValueError(f"TrainConfig: expected a finite time_limit >= 0 seconds or None, got {self.time_limit}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig: expected grad_clip > 0 or None, got {self.grad_clip}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"TrainConfig: schedule must be 'cosine' or 'constant', got {self.schedule!r}")


@dataclass
class TrainResult:
    """What ``train`` did: the losses per step, validation values ``(step, value)``, the best one, Adam steps and
    L-BFGS steps run, and the time taken. L-BFGS steps append one loss each and count on from the Adam steps
    in ``validation`` and ``best_step`` (the ``k``-th polish step is step ``steps + k``)."""

    losses: list[float] = field(default_factory=list)
    validation: list[tuple[int, float]] = field(default_factory=list)
    best_validation: float = math.inf
    best_step: int = -1
    steps: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    polish_steps: int = 0

    def summary(self, model: torch.nn.Module) -> dict[str, Any]:
        """What a results entry reports of this training: ``parameters`` (of ``model``), ``train_seconds``,
        ``steps_run`` and the ``loss_curve`` (:func:`loss_curve`)."""
        return {
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_seconds": self.seconds,
            "steps_run": self.steps,
            "loss_curve": loss_curve(self.losses),
        }


def loss_curve(losses: Sequence[float], points: int = 200) -> dict[str, list[float]]:
    """``losses`` averaged over at most ``points`` consecutive windows: ``{"steps": ..., "values": ...}``
    (``steps``: the last step of each window), small enough for ``metrics.json``."""
    window = max(1, math.ceil(len(losses) / points))
    starts = range(0, len(losses), window)
    return {
        "steps": [min(i + window, len(losses)) for i in starts],
        "values": [math.fsum(losses[i : i + window]) / len(losses[i : i + window]) for i in starts],
    }


def _schedule(config: TrainConfig) -> Callable[[int], float]:
    if config.schedule == "constant":
        return lambda step: 1.0
    floor = config.final_lr_fraction
    return lambda step: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps))


class _BestWeights:
    """The weights with the lowest validation value seen (``result.best_validation``), to restore at the end."""

    def __init__(self, model: torch.nn.Module, result: TrainResult, state: dict | None = None) -> None:
        self.model, self.result, self.state = model, result, state

    def offer(self, step: int, value: float) -> None:
        """Record ``value`` at ``step``; keep a copy of the weights if it is the best so far."""
        self.result.validation.append((step, value))
        if value < self.result.best_validation:
            self.result.best_validation, self.result.best_step = value, step
            self.state = copy.deepcopy(self.model.state_dict())

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)


def _out_of_time(config: TrainConfig, seconds: float) -> bool:
    """Whether the ranks' mean elapsed ``seconds`` exceed ``config.time_limit`` (the same answer on every rank)."""
    return config.time_limit is not None and all_reduce_mean(seconds) > config.time_limit


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
    objective: Callable[[], torch.Tensor] | None = None,
    on_start: Callable[[int], None] | None = None,
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

    With ``config.polish_steps > 0`` and a deterministic full-batch ``objective()``, Adam is followed by the
    L-BFGS stage (the polish) after the final checkpoint is written, so a resumed run repeats it exactly.

    ``on_start(step)`` is called once before the first step with the step training starts from (0, or a resumed
    checkpoint's), so that a schedule inside ``loss_fn`` (e.g. an annealed temperature) continues where it was.
    """
    if config.polish_steps and objective is None:
        raise ValueError(f"{config.description}: polish_steps > 0 needs a full-batch objective")
    if config.compile:
        compile_model(model, **({} if config.compile is True else config.compile))
    params = list(model.parameters()) if parameters is None else parameters
    main = distributed is None or distributed.is_main
    step_loss = _LossModule(model, loss_fn)
    if distributed is not None and distributed.world_size > 1:
        step_loss = DistributedDataParallel(step_loss, find_unused_parameters=True)
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult()
    best = _BestWeights(model, result)
    start_step = 0
    if config.resume and config.checkpoint and Path(config.checkpoint).is_file():
        state = read_checkpoint(config.checkpoint)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError) as error:
            problem = " ".join(line.strip() for line in str(error).splitlines()[:2])[:200] or type(error).__name__
            raise CheckpointError(f"{config.checkpoint} does not fit this model/optimizer: {problem}") from error
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start_step = int(state["step"])
        result = TrainResult(**state["result"])
        best = _BestWeights(model, result, state["best_model"])
        log.info("resumed from %s at step %d", config.checkpoint, start_step)
    if on_start is not None:
        on_start(start_step)

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
            "best_model": best.state,
            "result": asdict(result),
            "config": asdict(config),
        }
        atomic_save(payload, config.checkpoint)

    def run_validation(step: int) -> bool:
        model.eval()
        with torch.no_grad():
            value = all_reduce_mean(validate())
        model.train()
        best.offer(step, value)
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
            if _out_of_time(config, result.seconds):
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
    best.restore()
    model.eval()
    result.seconds = time.perf_counter() - began
    save(result.steps)
    if config.polish_steps:
        _polish(model, params, objective, validate, config, result, began)
    return result


def _polish(
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    objective: Callable[[], torch.Tensor],
    validate: Callable[[], float] | None,
    config: TrainConfig,
    result: TrainResult,
    began: float,
) -> None:
    """The L-BFGS stage: up to ``config.polish_steps`` full-batch steps on ``objective()`` (strong-Wolfe line
    search, up to 20 evaluations per step, history 50), each followed by a validation; the best weights are kept.

    Quasi-Newton steps reduce a smooth loss on exact data much faster than Adam's noisy ones once Adam has found
    the basin. The stage stops early when the whole training (clock ``began``) passes ``config.time_limit``, or
    at a non-finite loss (then restoring the best, or without ``validate`` the starting, weights). Every rank
    runs the same full-batch computation, so ranks stay identical without communication. Appends one loss per
    step to ``result``; updates its time, best value and ``polish_steps``.
    """
    polish_began = time.perf_counter()
    best = _BestWeights(model, result, copy.deepcopy(model.state_dict()))
    if validate is not None:
        with torch.no_grad():
            result.best_validation = min(result.best_validation, validate())
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=20, history_size=50, line_search_fn="strong_wolfe")
    # L-BFGS stops a step when the loss changes by less than tolerance_change = 1e-9 or the gradient falls below
    # tolerance_grad = 1e-7, both absolute: at circle losses of 1e-6 that ends every step after one evaluation.
    # Dividing the objective by its starting value makes those tolerances relative.
    with torch.no_grad():
        start = float(objective())
    scale = start if math.isfinite(start) and start > 0 else 1.0

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = objective() / scale
        value.backward()
        return value

    diverged = False
    while result.polish_steps < config.polish_steps and not _out_of_time(config, time.perf_counter() - began):
        value = float(optimizer.step(closure).detach()) * scale
        diverged = not math.isfinite(value)
        if diverged:
            break
        result.polish_steps += 1
        result.losses.append(value)
        if validate is not None:
            with torch.no_grad():
                best.offer(result.steps + result.polish_steps, validate())
    if validate is not None or diverged:
        best.restore()
    result.seconds = time.perf_counter() - began
    log.info(
        "%s: L-BFGS polish: %d steps in %.1f s, best validation loss %.3g",
        config.description,
        result.polish_steps,
        time.perf_counter() - polish_began,
        result.best_validation,
    )


def _index_of_best(result: TrainResult) -> int:
    values = [value for _, value in result.validation]
    return values.index(min(values))
