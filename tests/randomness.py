"""The tests' seeds and the false-failure budget of their statistical checks, in one place.

Seeds. Every seed of a random draw in a test goes through :func:`seed`, which shifts it by ``CANONFLOW_TEST_SEED``
(default 0: the seeds written in the tests). Initial weights, and the data of tests that train to a threshold, are
set-up, not Monte Carlo draws: they are seeded unshifted (:func:`fixed_manual_seed`, ``torch.Generator``), and
those tests are checked for independence of the thread count only.
``tests/seed_sweep.py`` reruns the tests marked ``statistical`` over many shifts and thread counts, to check that
their verdicts do not rest on a lucky seed.

Budget. A statistical check compares an estimate with its exact value in units of its standard error. With
``Z_SCORE`` standard errors per scalar comparison (two-sided, normal approximation), and at most
``STATISTICAL_COMPARISONS`` scalar comparisons in the whole suite, the chance that a correct implementation fails
any of them on a given seed is at most ``SUITE_FALSE_FAILURE_BUDGET`` (union bound).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from scipy.stats import norm
from scipy.stats import t as student_t

__all__ = [
    "OFFSET",
    "PER_COMPARISON",
    "STATISTICAL_COMPARISONS",
    "SUITE_FALSE_FAILURE_BUDGET",
    "Z_SCORE",
    "fixed_manual_seed",
    "gen",
    "manual_seed",
    "rng",
    "seed",
    "t_score",
]

OFFSET = int(os.environ.get("CANONFLOW_TEST_SEED", "0"))
"""Shift of every test seed (``CANONFLOW_TEST_SEED``); 0 in the README's test command."""

SUITE_FALSE_FAILURE_BUDGET = 1e-4
"""Largest chance, per run of the suite, that a statistical check fails although the code is right."""

STATISTICAL_COMPARISONS = 2000
"""Upper bound on the number of scalar estimate-vs-exact comparisons made by all ``statistical`` tests (the
largest is the 50-dimensional target: 3 samplers × 50 coordinates × mean and variance = 300, then the
per-parameter t-tests of the gradient estimators; all of them together stay well under 2000)."""

PER_COMPARISON = SUITE_FALSE_FAILURE_BUDGET / STATISTICAL_COMPARISONS
"""False-failure rate allowed to one scalar comparison (two-sided)."""

Z_SCORE = float(norm.isf(PER_COMPARISON / 2))
"""Standard errors allowed per comparison of a nearly normal estimate: 5.45 (budget 1e-4 over 2000)."""


def t_score(dof: int) -> float:
    """Standard errors allowed per comparison when the standard error itself is estimated from ``dof + 1``
    independent batches (Student's t with ``dof`` degrees of freedom): 8.7 for 19, 6.7 for 39."""
    return float(student_t.isf(PER_COMPARISON / 2, dof))


def seed(k: int) -> int:
    """The seed a test writes as ``k``, shifted by ``CANONFLOW_TEST_SEED`` (distinct ``k < 10⁶`` stay distinct)."""
    return k + 1_000_003 * OFFSET


def gen(k: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed(k)``."""
    return torch.Generator().manual_seed(seed(k))


def manual_seed(k: int) -> None:
    """Seed torch's global generator with ``seed(k)`` (``tests/conftest.py`` restores it after each test)."""
    torch.manual_seed(seed(k))


def fixed_manual_seed(k: int) -> None:
    """Seed torch's global generator with ``k`` itself, whatever ``CANONFLOW_TEST_SEED`` says: for a model's
    initial weights, which are part of a test's set-up, as the parameters of a layer under test are. The sweep
    shifts the draws a test makes statistics of (data, chains, Monte Carlo samples), not its starting point."""
    torch.manual_seed(k)


def rng(k: int) -> np.random.Generator:
    """A NumPy generator seeded with ``seed(k)``."""
    return np.random.default_rng(seed(k))
