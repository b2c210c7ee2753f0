"""A target of the user's own potential: ``Target.from_potential`` and what samplers report without an exact answer."""

from __future__ import annotations

import pytest
import torch

from canonflow.sampling import Target, hmc, sampler_metrics


def quadratic(q: torch.Tensor) -> torch.Tensor:
    return 0.5 * (q**2).sum(-1)


def test_a_potential_becomes_a_target_without_exact_moments() -> None:
    target = Target.from_potential(quadratic, 3, name="gaussian")
    q = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(target.potential(q), quadratic(q))
    assert not target.exact and target.mean is None and target.variance is None
    assert target.initial(4, torch.Generator().manual_seed(0)).shape == (4, 3)
    with pytest.raises(NotImplementedError, match="gaussian: a target given by its potential has no exact sampler"):
        target.sample(10)


def test_bad_potentials_and_initial_points_are_named() -> None:
    with pytest.raises(TypeError, match="Target.from_potential: expected a callable potential"):
        Target.from_potential("U", 2)
    with pytest.raises(ValueError, match="dim"):
        Target.from_potential(quadratic, 0)
    message = r"wrong: the potential must map q of shape \(B, 2\) to \(B,\) = \(5,\), got \(5, 2\)"
    with pytest.raises(ValueError, match=message):
        Target.from_potential(lambda q: q, 2, name="wrong").potential(torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"expected q of shape \(B, 2\)"):
        Target.from_potential(quadratic, 2).potential(torch.zeros(5, 3))
    start = Target.from_potential(quadratic, 2, name="mine", initial=lambda num, generator: torch.zeros(num, 3))
    with pytest.raises(ValueError, match=r"mine.initial: expected initial points of shape \(4, 2\), got \(4, 3\)"):
        start.initial(4)
    custom = Target.from_potential(quadratic, 2, initial=lambda num, generator: torch.full((num, 2), 0.5))
    assert torch.equal(custom.initial(3), torch.full((3, 2), 0.5))


def test_sampler_metrics_leave_out_moment_errors_without_an_exact_answer() -> None:
    target = Target.from_potential(quadratic, 2)
    generator = torch.Generator().manual_seed(0)
    result = hmc(target.potential, target.initial(4, generator), 50, warmup=50, num_steps=3, generator=generator)
    metrics = sampler_metrics(result, target)
    assert metrics["ess_bulk_min"] > 0 and "within_4_se" not in metrics and "max_mean_error_in_se" not in metrics
