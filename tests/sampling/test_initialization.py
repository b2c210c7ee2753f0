"""``canonflow/sampling/initialization.py``: Stan's initial points and the mode search."""

from __future__ import annotations

import math

import pytest
import torch
from randomness import gen

from canonflow.sampling import initial_points


def test_initial_points_are_stan_inits_with_finite_potential():
    def half_line(q: torch.Tensor) -> torch.Tensor:  # finite only for q > 0
        return torch.where(
            q[:, 0] > 0, -torch.log(q[:, 0].clamp(min=1e-300)) + q[:, 0], torch.full_like(q[:, 0], math.inf)
        )

    x = initial_points(half_line, 3, 50, generator=gen(27))
    assert x.shape == (50, 3) and (x[:, 0] > 0).all() and (x.abs() <= 2).all()
    with pytest.raises(ValueError, match="initial_points: no point"):
        initial_points(lambda q: torch.full(q.shape[:1], math.nan, dtype=q.dtype), 2, 2, attempts=3)


def test_mode_search_starts_at_the_mode():
    mean = torch.tensor([26.0, -3.0], dtype=torch.float64)

    def shifted(q: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((q - mean) ** 2 * torch.tensor([1.0, 100.0], dtype=torch.float64)).sum(-1)

    x = initial_points(shifted, 2, 3, generator=gen(28), mode_search=True)
    torch.testing.assert_close(x, mean.expand(3, 2), rtol=0, atol=1e-6)
