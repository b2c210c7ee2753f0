"""What the tests of ``canonflow.cli`` share: the repository root, the fast demo's command line, a subprocess run of
``python -m canonflow``, a fault injected into the training loop, and the user's own objects as module text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import canonflow.density.fit as density_fit
from canonflow.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]
BANANA = ["demo", "--example", "banana"]  # the fast demo, for tests of the machinery around training


def run_canonflow(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m canonflow ARGS`` in a subprocess with one thread, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "canonflow", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict stored in the checkpoint at ``path``."""
    return read_checkpoint(path)["state_dict"]


def fault_at(monkeypatch: pytest.MonkeyPatch, step: int | None, fault: str = "") -> list[int]:
    """Make the training loop's loss raise ``KeyboardInterrupt`` (``fault="interrupt"``) or return NaN
    (``fault="nan"``) at its ``step``-th evaluation (``None``: never); returns ``[evaluations so far]``."""
    calls = [0]
    train = density_fit.train

    def faulty_train(model: torch.nn.Module, loss_fn: Callable, *args: Any, **kwargs: Any) -> Any:
        def loss(generator: torch.Generator) -> torch.Tensor:
            calls[0] += 1
            if calls[0] - 1 == step:
                if fault == "interrupt":
                    raise KeyboardInterrupt
                return torch.tensor(float("nan"))
            return loss_fn(generator)

        return train(model, loss, *args, **kwargs)

    monkeypatch.setattr(density_fit, "train", faulty_train)
    return calls


OWN_SYSTEM = """
import torch
from canonflow.systems import HamiltonianSystem

def potential(q):
    return 0.5 * (q[:, 0] ** 2 - 1) ** 2 + 2.0 * q[:, 1] ** 2

system = HamiltonianSystem.from_potential(potential, n=2)
not_a_system = potential


def initial(num, generator):
    return 2 * torch.rand(num, 2, generator=generator, dtype=torch.float64) - 1


quartic = HamiltonianSystem.from_potential(lambda q: 0.25 * q[:, 0] ** 4, n=1, sample_initial=initial)
"""


OWN_TARGET = """
import torch
from canonflow.sampling import Target

def two_wells(q):
    return (q[:, 0] ** 2 - 1) ** 2 + 0.5 * q[:, 1] ** 2

target = Target.from_potential(two_wells, 2, name="two_wells")
"""
