"""``canonflow/integrators/base.py``: a new method is a step function and a ``Method`` record run by
``integrate``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from canonflow.integrators import (
    HamiltonianGradient,
    Method,
    integrate,
)
from canonflow.systems import HarmonicOscillator
from integrators.common import DT, FastOscillator, explicit_euler


def test_a_new_method_is_a_step_function_and_a_record() -> None:
    """Forward Euler ``x' = x + h Ω∇H(x)`` through ``integrate``: first order, input errors naming it."""

    def euler_step(
        gradient: HamiltonianGradient, x: torch.Tensor, h: float, carry: None, k: int
    ) -> tuple[torch.Tensor, None]:
        return x + h * gradient.field(x), None

    euler = Method("explicit_euler", 1, euler_step, separable=False, symplectic=False, symmetric=False)
    x0 = torch.tensor([[1.0, 0.5], [-0.3, 1.2]], dtype=DT)
    torch.testing.assert_close(
        integrate(euler, FastOscillator(), x0, 1e-3, 100, trajectory=True)[1:],
        explicit_euler(x0, 1e-3, 100)[1:],
        rtol=0,
        atol=1e-15,
    )
    system = HarmonicOscillator()
    counts = [100, 200, 400, 800]
    errors = [
        (integrate(euler, system, x0, 2.0 / m, m) - system.exact_flow(x0, 2.0)).abs().max().item() for m in counts
    ]
    slope = np.polyfit(np.log(2.0 / np.array(counts)), np.log(errors), 1)[0]
    assert abs(slope - 1.0) <= 0.15, slope
    with pytest.raises(ValueError, match="explicit_euler.*steps"):
        integrate(euler, system, x0, 0.1, 0)
