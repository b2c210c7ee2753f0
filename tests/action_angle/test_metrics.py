"""Held-out metrics (canonflow/action_angle/metrics.py)."""

from __future__ import annotations

import math

import pytest
import torch

from canonflow.action_angle import frequency_error, linear_fit, unwrap


def test_frequencies_of_an_exact_map() -> None:
    times = torch.linspace(0, 10, 50, dtype=torch.float64)
    angles = torch.remainder(0.3 - 1.7 * times, 2 * math.pi).reshape(1, -1, 1)
    slope, intercept, r2 = linear_fit(times, unwrap(angles, dim=1))
    assert torch.allclose(slope, torch.tensor(-1.7, dtype=torch.float64))
    assert float(r2) == pytest.approx(1.0)
    learned = torch.tensor([[-2.0, 1.0], [-4.0, 2.0]], dtype=torch.float64)
    matched = frequency_error(learned, torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=torch.float64))
    assert matched["matched"] == [1, 0] and max(matched["relative_error"]) == 0
    winding = frequency_error(learned, torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert winding["matched"] == [2, 1]
