"""The two-oscillator fixture of the action-angle tests: exact trajectories, exact and wrong charts, a small fit."""

from __future__ import annotations

import math

import torch
from layer_contract import randomize_
from randomness import fixed_manual_seed

from canonflow.action_angle import ActionAngleFlow
from canonflow.action_angle.charts import normal_mode_chart
from canonflow.losses import Loss
from canonflow.systems import HarmonicOscillator

OSCILLATOR = HarmonicOscillator(2, omega=[1.0, 1.7])


TIMES = torch.linspace(0.0, 6.0, 40, dtype=torch.float64)


def oscillator_data(seed: int, num: int) -> torch.Tensor:
    """Exact oscillator trajectories ``(num, 40, 4)`` (closed form, so the test spends no time integrating)."""
    initial = OSCILLATOR.sample_initial(num, generator=torch.Generator().manual_seed(seed))
    return torch.stack([OSCILLATOR.exact_flow(initial, t) for t in TIMES], dim=1)


def oscillator_charts() -> tuple[ActionAngleFlow, ActionAngleFlow, ActionAngleFlow]:
    """The oscillator's exact chart, the identity and a randomly sheared chart (float64, 2 dof)."""
    exact = ActionAngleFlow(2, chart=normal_mode_chart(OSCILLATOR, [0.0] * 4), blocks=0, householder=0)
    identity = ActionAngleFlow(2, blocks=0, householder=0)
    sheared = ActionAngleFlow(2, chart=normal_mode_chart(OSCILLATOR, [0.0] * 4), blocks=1, hidden=4, householder=0)
    return exact, identity, randomize_(sheared, 0.2)


def fit_oscillator(loss: Loss) -> ActionAngleFlow:
    """A linear read-out fitted to 64 oscillator trajectories with ``loss`` (300 Adam steps and 3 L-BFGS steps);
    the run must end with a finite validation loss."""
    fixed_manual_seed(0)
    model = ActionAngleFlow(2, blocks=0)
    result = model.fit(
        oscillator_data(0, 64), TIMES, loss=loss, batch_size=32, polish_steps=3, steps=300, lr=3e-2, progress=False
    )
    assert math.isfinite(result.best_validation)
    return model
