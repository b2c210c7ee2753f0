"""What a fitted flow's latent coordinates mean: learned frequencies and the dependence of observables."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from canonflow.flow import CanonicalFlow, check_flow
from canonflow.validation import as_samples, check_positive_int

__all__ = ["latent_frequencies", "latent_dependence"]


def latent_frequencies(flow: CanonicalFlow) -> torch.Tensor:
    """The learned latent frequencies ``ω_k`` of a one-component ``scale="mode"`` base, sorted, shape ``(n,)``."""
    base = check_flow(flow, "latent_frequencies").base
    if base.scale != "mode":
        raise TypeError("latent_frequencies: needs a base with per-mode frequencies (scale='mode')")
    if base.components != 1:
        raise TypeError(
            "latent_frequencies: defined for one component; the flow's base is a mixture, whose components each "
            "have their own frequencies (read base.frequencies, shape (K, n))"
        )
    return base.frequencies[0].detach().sort().values


def _ranks_to_bins(values: torch.Tensor, bins: int) -> torch.Tensor:
    ranks = values.argsort(0).argsort(0)
    return (ranks * bins // values.shape[0]).clamp(max=bins - 1)


def latent_dependence(
    flow: CanonicalFlow,
    x: torch.Tensor,
    observables: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    bins: int = 16,
) -> dict[str, dict[str, torch.Tensor]]:
    """How each observable depends on each latent coordinate ``z = T(x)`` (``x``: phase-space ``(B, 2n)``).

    For every observable ``f: (B, 2n) -> (B,)`` (evaluated on ``x``) returns ``{"correlation": ρ,
    "mutual_information": I}``, each of shape ``(2n,)`` over the latent coordinates ``[Q_1..Q_n, P_1..P_n]``:
    the Pearson correlation and a plug-in mutual information in nats on an equal-frequency ``bins × bins``
    grid, ``I = Σ_ij p_ij ln(p_ij/(p_i p_j))`` (positively biased by about ``(bins−1)²/(2B)``).
    """
    who = "latent_dependence"
    n = check_flow(flow, who).n
    check_positive_int(bins, "bins", who)
    x = as_samples(x, n, who, flow.base.loc, "x")
    if x.shape[1] != 2 * n or x.shape[0] < 2:
        raise ValueError(f"{who}: expected phase-space x of shape (B >= 2, {2 * n}), got {tuple(x.shape)}")
    with torch.no_grad():
        z = flow.to_latent(x).double()
    z_bins = _ranks_to_bins(z, bins)
    z_std = (z - z.mean(0)) / z.std(0).clamp_min(1e-300)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, observable in observables.items():
        with torch.no_grad():
            f = observable(x)
        if not isinstance(f, torch.Tensor) or f.shape != (x.shape[0],):
            raise ValueError(f"{who}: observable {name!r} must map (B, 2n) to (B,)")
        f = f.double()
        f_std = (f - f.mean()) / f.std().clamp_min(1e-300)
        correlation = (z_std * f_std[:, None]).sum(0) / (x.shape[0] - 1)
        f_bins = _ranks_to_bins(f[:, None], bins)[:, 0]
        joint = torch.zeros(2 * n, bins * bins, dtype=torch.float64)
        joint.scatter_add_(1, (z_bins * bins + f_bins[:, None]).T, torch.ones(2 * n, x.shape[0], dtype=torch.float64))
        joint = joint.view(2 * n, bins, bins) / x.shape[0]
        outer = joint.sum(2, keepdim=True) * joint.sum(1, keepdim=True)
        terms = torch.where(joint > 0, joint * (joint / outer.clamp_min(1e-300)).log(), torch.zeros_like(joint))
        out[name] = {"correlation": correlation, "mutual_information": terms.sum((1, 2))}
    return out
