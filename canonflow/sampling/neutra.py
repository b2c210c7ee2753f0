"""NeuTra HMC and NeuTra-NUTS: HMC or NUTS in the latent space of a trained canonical flow.

Hoffman et al. (2019) run HMC on the pull-back of the target through a normalizing flow; for a general flow
the latent potential carries ``−log|det J|``. For a canonical flow ``log|det J| = 0``, so no Jacobian term
(nor its gradient) is needed. A target ``π(q) ∝ e^{−U(q)}`` on ``ℝ^d`` is augmented to the joint
``e^{−U(q) − |p|²/2}`` on ``ℝ^{2d}`` (see ``canonflow.sampling.model``), and HMC samples the whitened latent

    ``w = (T(x) − μ)/σ``,  ``U_w(w) = U(q(x)) + |p(x)|²/2``,  ``x = T⁻¹(μ + σ ⊙ w)``,

where ``μ, σ`` are the flow's base mean and scales. The whitening is affine with a constant Jacobian, which
cancels in the Metropolis–Hastings ratio, so the chain is exactly invariant for the joint; its ``q`` half is
an exact chain for ``π(q)``. With learned auxiliary momenta ``|p|²/2`` becomes ``−log r(p | q)``
(``FlowSampler.joint_potential``); the ``q`` half is still exact. If the flow fits, ``U_w ≈ |w|²/2`` and HMC
mixes as on a standard normal. ``neutra_nuts`` runs :func:`~canonflow.sampling.nuts` there instead (no path
length to tune).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from canonflow.flow import CanonicalFlow, check_flow
from canonflow.sampling.hmc import hmc
from canonflow.sampling.model import joint_energy
from canonflow.sampling.nuts import nuts
from canonflow.sampling.potential import Potential
from canonflow.sampling.result import SamplingResult
from canonflow.validation import check_positive_int, validation

__all__ = ["neutra_hmc", "neutra_nuts"]


def neutra_hmc(
    flow: CanonicalFlow,
    potential: Potential,
    num_samples: int,
    chains: int = 16,
    *,
    generator: torch.Generator | None = None,
    **hmc_options: object,
) -> SamplingResult:
    """HMC (``canonflow.sampling.hmc``, options passed through) on the whitened latent target of ``flow``.

    ``flow``: a trained ``CanonicalFlow`` (e.g. a ``FlowSampler``) on ``ℝ^{2d}`` with a one-component base;
    ``potential``: ``U(q) -> (B,)`` on ``ℝ^d``. Chains start at draws of the flow (``w ~ N(0, I)``). Returns a
    ``SamplingResult`` whose ``samples`` are the ``q`` halves ``(num_samples, chains, d)`` of the mapped-back draws;
    the latent draws are in ``extra["latent"]``.
    Each latent gradient costs one gradient of ``U`` (counted) plus a flow pass. Input validation of the flow
    is switched off inside, so that a divergent trajectory's NaN is reported as a divergence instead of raising.
    """
    return _neutra("neutra_hmc", hmc, flow, potential, num_samples, chains, generator, hmc_options)


def neutra_nuts(
    flow: CanonicalFlow,
    potential: Potential,
    num_samples: int,
    chains: int = 16,
    *,
    generator: torch.Generator | None = None,
    **nuts_options: object,
) -> SamplingResult:
    """NUTS (:func:`canonflow.sampling.nuts`, options passed through) on the whitened latent target of ``flow``;
    otherwise as :func:`neutra_hmc` (chains start at draws of the flow; ``extra["latent"]`` has the latent
    draws)."""
    return _neutra("neutra_nuts", nuts, flow, potential, num_samples, chains, generator, nuts_options)


def _neutra(
    who: str,
    sampler: Callable[..., SamplingResult],
    flow: CanonicalFlow,
    potential: Potential,
    num_samples: int,
    chains: int,
    generator: torch.Generator | None,
    options: dict[str, object],
) -> SamplingResult:
    check_flow(flow, who)
    check_positive_int(num_samples, "num_samples", who)
    check_positive_int(chains, "chains", who)
    if flow.base.components != 1:
        raise ValueError(f"{who}: the flow's base must be one Gaussian to whiten by, not a mixture")
    loc = flow.base.loc[0].detach()
    scale = flow.base.log_std()[0].detach().exp()
    energy = joint_energy(flow, potential)

    def to_data(w: torch.Tensor) -> torch.Tensor:
        return flow.to_data(loc + scale * w)

    def latent_potential(w: torch.Tensor) -> torch.Tensor:
        return energy(to_data(w))

    w0 = torch.randn(chains, 2 * flow.n, generator=generator, dtype=loc.dtype, device=loc.device)
    with validation(False):
        result = sampler(latent_potential, w0, num_samples, generator=generator, **options)
        latent = result.samples
        with torch.no_grad():
            data = to_data(latent.reshape(-1, latent.shape[-1])).reshape(latent.shape)
    result.samples = data[..., : flow.n]
    result.extra["latent"] = latent
    return result
