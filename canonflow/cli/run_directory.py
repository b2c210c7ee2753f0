"""The run directory ``OUT`` of a command and everything written to it, owned by one :class:`Run`.

``OUT/config.toml`` (the resolved config, written before the run; ``--resume`` reads it back),
``OUT/metrics.json`` (written after the run, schema :data:`METRICS_SCHEMA_VERSION`: ``schema_version``,
``command``, ``argv``, ``canonflow_version``, ``torch_version``, ``python_version``, ``platform``, ``seed``,
``device``, ``dtype``, ``config``, ``resumed``, ``world_size``, ``started_at`` (ISO 8601, UTC), ``wall_seconds``
and ``results``; non-finite numbers written as ``null``), ``OUT/figures/``, models (``model.pt``) and training
states (``training.pt``, which ``--resume`` continues from). In a data-parallel run only rank 0 writes.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
import torch

import canonflow
from canonflow.checkpoint import atomic_write, save_model
from canonflow.distributed import DistributedContext
from canonflow.training import TrainResult

__all__ = ["METRICS_SCHEMA_VERSION", "Run", "loss_curve", "training_summary"]

METRICS_SCHEMA_VERSION = 1


@dataclass
class Run:
    """One run of a command: its directory ``out`` (``None``: nothing is written), whether it shows progress,
    resumes from ``out``'s training states, and this process's place in a data-parallel run (``distributed``).

    A subcommand's ``run(config, run)`` asks it for the device, the training options (with the checkpoint in
    ``out``), and writes through it (models, figures) when :attr:`writes`.
    """

    out: Path | None = None
    progress: bool = True
    resume: bool = False
    distributed: DistributedContext | None = None

    def __post_init__(self) -> None:
        self.out = None if self.out is None else Path(self.out)

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0 of a data-parallel run, or the only process."""
        return self.distributed is None or self.distributed.is_main

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files: there is a run directory and this is rank 0."""
        return self.out is not None and self.is_main

    def figures(self) -> Path:
        """``OUT/figures``, created if needed."""
        path = self.out / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def device(self, config: Mapping[str, Any]) -> torch.device:
        """The device to train on: this rank's device in a data-parallel run, else ``config["device"]``."""
        return self.distributed.device if self.distributed is not None else torch.device(config["device"])

    def training_options(
        self,
        config: Mapping[str, Any],
        preset: Mapping[str, Any],
        description: str,
        checkpoint: str = "training.pt",
        evaluations: int | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments of :class:`canonflow.training.TrainConfig`: ``preset``, with ``steps`` and
        ``time_limit`` from ``config`` where set, ``seed`` and ``checkpoint_every`` from ``config``, and the
        checkpoint ``OUT/checkpoint`` (none without ``out``) that a resumed run continues from.
        ``evaluations``: validate this many times along the run (``eval_every = steps // evaluations``)."""
        settings = dict(preset)
        for key in ("steps", "time_limit"):
            if config.get(key) is not None:
                settings[key] = config[key]
        settings.update(seed=config["seed"], description=description, progress=self.progress, resume=self.resume)
        if evaluations is not None:
            settings["eval_every"] = max(1, settings["steps"] // evaluations)
        if self.out is not None:
            settings.update(checkpoint=str(self.out / checkpoint), checkpoint_every=config["checkpoint_every"])
        return settings

    def save_model(self, model: torch.nn.Module, extra: Mapping[str, Any], name: str = "model.pt") -> None:
        """Write ``model`` to ``OUT/name`` with ``extra`` (the command, what it was trained on, the config)."""
        save_model(self.out / name, model, extra=dict(extra))

    def config_file(self) -> Path | None:
        """``OUT/config.toml`` if it exists (what ``--resume`` reads when no ``--config`` is given)."""
        path = None if self.out is None else self.out / "config.toml"
        return path if path is not None and path.is_file() else None

    def has_training_state(self) -> bool:
        """Whether ``OUT`` holds a training state (``training.pt`` or ``<flow>_training.pt``)."""
        return self.out is not None and any(self.out.glob("*training.pt"))

    def write_config(self, command: str, config: Mapping[str, Any]) -> None:
        """Write ``OUT/config.toml`` (keys whose value is ``None``, "the preset's", are left out)."""
        table = {key: value for key, value in config.items() if value is not None}
        header = f"# resolved config of a {command} run; use it again with --config\n"
        atomic_write(self.out / "config.toml", lambda stream: stream.write((header + tomli_w.dumps(table)).encode()))

    def write_metrics(
        self,
        command: str,
        config: Mapping[str, Any],
        results: Mapping[str, Any],
        *,
        started: float,
        seconds: float,
        argv: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Write ``OUT/metrics.json`` in the schema of this module's docstring and return what was written."""
        metrics = _plain(
            {
                "schema_version": METRICS_SCHEMA_VERSION,
                "command": command,
                "argv": list(sys.argv if argv is None else argv),
                "canonflow_version": canonflow.__version__,
                "torch_version": torch.__version__,
                "python_version": platform.python_version(),
                "platform": platform.platform(),
                "seed": config.get("seed"),
                "device": config.get("device"),
                "dtype": config.get("dtype"),
                "config": dict(config),
                "resumed": self.resume,
                "world_size": 1 if self.distributed is None else self.distributed.world_size,
                "started_at": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
                "wall_seconds": seconds,
                "results": results,
            }
        )
        text = json.dumps(metrics, indent=2) + "\n"
        atomic_write(self.out / "metrics.json", lambda stream: stream.write(text.encode()))
        return metrics


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def loss_curve(losses: Sequence[float], points: int = 200) -> dict[str, list[float]]:
    """Training losses averaged over at most ``points`` consecutive windows: ``{"steps": ..., "values": ...}``
    (``steps``: the last step of each window), small enough for ``metrics.json``."""
    window = max(1, math.ceil(len(losses) / points))
    starts = range(0, len(losses), window)
    return {
        "steps": [min(i + window, len(losses)) for i in starts],
        "values": [math.fsum(losses[i : i + window]) / len(losses[i : i + window]) for i in starts],
    }


def training_summary(model: torch.nn.Module, result: TrainResult) -> dict[str, Any]:
    """The training part of a results entry: ``parameters``, ``train_seconds``, ``steps_run``, ``loss_curve``."""
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": result.seconds,
        "steps_run": result.steps,
        "loss_curve": loss_curve(result.losses),
    }
