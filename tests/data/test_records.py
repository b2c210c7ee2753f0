"""Tests of :mod:`canonflow.data.records`: the derivative estimators of measured samples on uneven times.

``TrajectoryRecord`` itself (own times, gaps, unequal lengths, ``select``, float32) is tested with what is fitted
and evaluated on it, in ``tests/hamiltonian_learning/test_records.py``."""

from __future__ import annotations

import numpy as np
import pytest
from randomness import seed

from canonflow.data import estimate_derivatives


def sine_samples(noise_std: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sin t, cos t)`` at 121 jittered times (``h ≈ 0.05 ± 20 %``), optionally noisy, and the exact derivative."""
    t = np.cumsum(np.r_[0.0, 0.05 * (1 + 0.4 * (np.random.default_rng(0).random(120) - 0.5))])
    values = np.stack([np.sin(t), np.cos(t)], axis=1)
    noise = noise_std * np.random.default_rng(seed(1)).standard_normal(values.shape)
    return t, values + noise, np.stack([np.cos(t), -np.sin(t)], axis=1)


@pytest.mark.parametrize(("method", "bound"), [("forward", 0.03), ("central", 1e-3), ("spline", 5e-3)])
def test_derivative_estimators_on_uneven_times(method: str, bound: float) -> None:
    # noise-free: RMS error of forward differences ≈ h/2·rms(sin) ≈ 0.018, of central (second-order) ones 3e-4,
    # of the smoothing spline 2e-3 (its smoothing)
    t, values, exact = sine_samples(0.0)
    error = np.sqrt(((estimate_derivatives(t, values, method) - exact) ** 2).mean())
    assert bound / 100 < error < bound, (method, error)
    with pytest.raises(ValueError, match="estimate_derivatives: method 'spline' needs at least 5 samples"):
        estimate_derivatives(t[:4], values[:4], "spline")


@pytest.mark.statistical
def test_the_smoothing_spline_beats_differences_on_noisy_samples() -> None:
    # noise 0.01: differences amplify it by ≈ 1/(√2 h) (central RMS error 0.15), the spline smooths it (0.02)
    t, values, exact = sine_samples(0.01)
    errors = {m: np.sqrt(((estimate_derivatives(t, values, m) - exact) ** 2).mean()) for m in ("central", "spline")}
    assert errors["spline"] < 0.25 * errors["central"], errors
