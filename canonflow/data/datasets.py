"""Point data sets of the density-estimation benchmarks (``canonflow density``) and the banana density (demo).

:func:`load_dataset` gives train / validation / test configurations ``q``: ``"digits"`` (see
:mod:`canonflow.data.digits`) or ``"ring2d"`` (exact Boltzmann samples of :class:`~canonflow.systems.Ring2D`'s
positions at β = 1, with the exact test NLL). :func:`banana` draws exact samples of a banana density whose
expected NLL, :data:`BANANA_NLL`, is known in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from canonflow.data.digits import LogitPreprocessing, load_digits_split
from canonflow.systems import Ring2D

__all__ = ["BANANA_NLL", "DATASETS", "Dataset", "banana", "load_dataset"]

DATASETS = ("digits", "ring2d")
"""The names :func:`load_dataset` takes."""
BANANA_NLL = math.log(2 * math.pi) + 1.0
"""The expected NLL of :func:`banana`'s density, ``E[−log N(z; 0, I)]`` in two dimensions (the shear has unit
Jacobian)."""


@dataclass
class Dataset:
    """Train/validation/test configurations ``(N, dim)`` (float64), the test set's log-Jacobian of the
    preprocessing (zeros for ring2d) and the exact test NLL where known."""

    train: torch.Tensor
    validation: torch.Tensor
    test: torch.Tensor
    test_log_jacobian: torch.Tensor
    exact_test_nll: float | None


def load_dataset(
    name: str, seed: int, *, sizes: Sequence[int] = (20_000, 2_000, 10_000), dequantizations: int = 4
) -> Dataset:
    """The data set ``name`` (one of :data:`DATASETS`) drawn or split with ``seed``.

    ``sizes``: train/validation/test sizes of ring2d; ``dequantizations``: dequantized copies of the digits
    training pixels (fresh noise per copy). ``ValueError`` for an unknown name.
    """
    if name == "digits":
        train_px, valid_px, test_px = load_digits_split(seed)
        prep = LogitPreprocessing(train_px, seed)
        copies = train_px.repeat(dequantizations, 1)
        train = prep(prep.dequantize(copies, torch.Generator().manual_seed(seed + 1)))[0]
        valid = prep(prep.dequantize(valid_px, torch.Generator().manual_seed(seed + 2)))[0]
        test, test_log_jacobian = prep(prep.dequantize(test_px, torch.Generator().manual_seed(seed + 3)))
        return Dataset(train, valid, test, test_log_jacobian, None)
    if name != "ring2d":
        raise ValueError(f"load_dataset: unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    system = Ring2D()
    generator = torch.Generator().manual_seed(seed)
    train, valid, test = (system.sample_boltzmann(size, generator=generator)[:, :2] for size in sizes)
    exact = float((-system.log_density_q(test) + system.log_normalizer_q()).mean())
    return Dataset(train, valid, test, torch.zeros(len(test), dtype=torch.float64), exact)


def banana(num: int, generator: torch.Generator) -> torch.Tensor:
    """Exact samples ``(num, 2)`` (float64) of ``N(0, I)`` pushed through the canonical shear
    ``(q, p) -> (q, p + q² − 1)``."""
    q, p = torch.randn(2, num, generator=generator, dtype=torch.float64)
    return torch.stack([q, p + q**2 - 1.0], dim=1)
