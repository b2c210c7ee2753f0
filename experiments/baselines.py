"""The nflows baselines of ``experiments/density.py`` and ``experiments/free_energy.py``: RealNVP and MAF.

:func:`baseline` builds the transform of nflows' ``SimpleRealNVP`` / ``MaskedAutoregressiveFlow`` layer by layer
(the same layers in the same order, so the same initialization for a seed) under a ``N(0, I)`` base. These
flows are not volume preserving: their log-determinant enters ``log q``.
"""

from __future__ import annotations

import torch
from nflows import transforms
from nflows.nn import nets

from canonflow.distributions import PhaseSpaceGaussian
from canonflow.flow import CanonicalFlow

__all__ = ["baseline"]


def baseline(kind: str, n: int, hidden: int, layers: int, blocks: int) -> CanonicalFlow:
    """A RealNVP (``kind="realnvp"``, affine couplings with residual nets) or MAF (``"maf"``, reversals and
    masked affine autoregressive layers) flow on ℝ^{2n} with ``layers`` layers of ``blocks`` residual blocks of
    width ``hidden``, in float64."""
    dim = 2 * n
    parts: list[transforms.Transform] = []
    if kind == "realnvp":
        mask = torch.ones(dim)
        mask[::2] = -1
        for _ in range(layers):
            net = lambda i, o: nets.ResidualNet(i, o, hidden_features=hidden, num_blocks=blocks)  # noqa: E731
            parts.append(transforms.AffineCouplingTransform(mask=mask, transform_net_create_fn=net))
            mask *= -1
    elif kind == "maf":
        for _ in range(layers):
            parts.append(transforms.ReversePermutation(dim))
            parts.append(transforms.MaskedAffineAutoregressiveTransform(dim, hidden, num_blocks=blocks))
    else:
        raise ValueError(f"baseline: unknown kind {kind!r}; choose 'realnvp' or 'maf'")
    return CanonicalFlow(transforms.CompositeTransform(parts), PhaseSpaceGaussian.standard(n)).double()
