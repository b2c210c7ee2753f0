"""canonflow evaluate CHECKPOINT: describe any model.pt and recompute its held-out metrics.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from canonflow.checkpoint import load, read_checkpoint
from canonflow.cli.catalog import SUBCOMMANDS, command
from canonflow.cli.options import complete
from canonflow.run_directory import Run

__all__ = ["COMMAND", "OPTIONS", "run"]

OPTIONS = SUBCOMMANDS["evaluate"].options
TRAINERS = tuple(name for name, spec in SUBCOMMANDS.items() if spec.resumable)
"""The subcommands that train (and write the checkpoints ``evaluate`` recomputes metrics of)."""


def trained_by(kind: str, extra: dict[str, Any]) -> str | None:
    """The subcommand that wrote a checkpoint of ``kind`` with ``extra`` (``None``: unknown)."""
    if extra.get("command") in TRAINERS:
        return extra["command"]
    legacy = {
        ("ActionAngleFlow", "system"): "action-angle",
        ("CanonicalFlow", "dataset"): "density",
        ("CanonicalFlow", "system"): "free-energy",
        ("PhaseSpaceFlow", "dataset"): "density",  # version-1 files
        ("PhaseSpaceFlow", "system"): "free-energy",
        ("FlowSampler", "target"): "sample",
        ("HamiltonianNet", "system"): "learn-hamiltonian",
    }
    return next((name for (k, key), name in legacy.items() if k == kind and key in extra), None)


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Load ``config["checkpoint"]`` and return ``kind``, ``config``, ``parameters``, ``extra``, ``trained_by``
    and, when known, the recomputed held-out ``metrics``."""
    config = complete(OPTIONS, config)
    if config["checkpoint"] is None or not Path(config["checkpoint"]).is_file():
        raise ValueError(f"evaluate: no checkpoint at {config['checkpoint']}; expected the path of a model.pt")
    payload = read_checkpoint(config["checkpoint"])
    if payload.get("kind") == "training-state":
        raise ValueError(
            f"{config['checkpoint']} is a training state (training.pt), which --resume reads; evaluate its model.pt"
        )
    model = load(config["checkpoint"]).eval()
    extra = payload.get("extra", {})
    name = trained_by(payload["kind"], extra)
    results: dict[str, Any] = {
        "checkpoint": str(config["checkpoint"]),
        "kind": payload["kind"],
        "config": payload["config"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "extra": {key: value for key, value in extra.items() if key != "config"},
        "trained_by": name,
    }
    command = SUBCOMMANDS[name].command() if name is not None else None
    if command is not None and command.evaluate_checkpoint is not None:
        known = {option.name for option in command.options}  # files of older versions: keys in ``extra``
        stored = extra.get("config") or {key: value for key, value in extra.items() if key in known}
        results["metrics"] = command.evaluate_checkpoint(model, complete(command.options, stored), config)
    return results


def report(results: dict[str, Any]) -> list[str]:
    """The lines ``canonflow evaluate`` prints."""
    lines = [
        f"{results['checkpoint']}: {results['kind']} with {results['parameters']} parameters",
        f"config: {json.dumps(results['config'])}",
        f"extra: {json.dumps(results['extra'])}",
    ]
    if "metrics" in results:
        lines.append(f"held-out metrics (recomputed as `canonflow {results['trained_by']}` does):")
        lines.extend(f"  {key}: {json.dumps(value)}" for key, value in results["metrics"].items())
    else:
        lines.append("no held-out metrics: the checkpoint does not say what it was trained on")
    return lines


COMMAND = command(__name__)
