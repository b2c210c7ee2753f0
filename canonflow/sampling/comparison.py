"""Samplers side by side on one target: HMC or NUTS, in the latent space of a canonical flow too (NeuTra), and
flow-MCMC with a canonical and a learned-leapfrog flow.

What ``canonflow sample`` runs, as one call for the user's own :class:`~canonflow.sampling.Target`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from canonflow.sampling.euclidean_metric import METRICS
from canonflow.sampling.flow_mcmc import flow_mcmc, importance_resample
from canonflow.sampling.hmc import hmc
from canonflow.sampling.metrics import sampler_metrics
from canonflow.sampling.model import FlowSampler
from canonflow.sampling.neutra import neutra_hmc, neutra_nuts
from canonflow.sampling.nuts import nuts
from canonflow.sampling.precondition import PRECONDITIONERS, Preconditioner, fit_preconditioner
from canonflow.sampling.result import SamplingResult
from canonflow.sampling.targets import Target
from canonflow.sampling.training import train_sampler
from canonflow.training import TrainConfig
from canonflow.validation import check_choice

__all__ = ["FLOWS", "SAMPLERS", "SamplerComparison", "compare_samplers"]

FLOWS = ("canonical", "leapfrog")
"""The two flows a comparison trains: ``FlowSampler.canonical`` and ``FlowSampler.leapfrog``."""
SAMPLERS = ("hmc", "nuts")
"""The gradient-based samplers a comparison runs on the target and in a flow's latent space (NeuTra): HMC with
``hmc_steps`` leapfrog steps per transition, or NUTS."""
LAYER_SETTINGS = ("householder", "momentum", "point", "activation", "linear_skip")


@dataclass
class SamplerComparison:
    """The outcome of :func:`compare_samplers`: each sampler's ``draws`` and ``scores``
    (:func:`~canonflow.sampling.sampler_metrics` plus ``ess_per_evaluation_vs_hmc`` or ``_vs_nuts``: relative to
    the gradient-based sampler on the target), the trained ``flows`` (float64,
    CPU) and, per flow, its ``training`` summary (seconds, steps, best reverse-KL bound, importance ESS of the
    ``importance_draws``, ``log Z`` estimate, parameters)."""

    draws: dict[str, SamplingResult]
    scores: dict[str, dict[str, Any]]
    flows: dict[str, FlowSampler]
    training: dict[str, dict[str, Any]]


def compare_samplers(
    target: Target,
    settings: Mapping[str, Any],
    training: Mapping[str, TrainConfig],
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    precondition: str | Preconditioner = "moments",
    sampler: str = "hmc",
    metric: str = "auto",
) -> SamplerComparison:
    """Sample ``target`` with ``sampler`` (one of :data:`SAMPLERS`), train a canonical and a learned-leapfrog
    :class:`FlowSampler`, then sample with the same sampler in the canonical flow's latent space (NeuTra-HMC or
    NeuTra-NUTS) and with flow-MCMC (independence Metropolis–Hastings) with each flow.

    ``settings`` (a ``sample`` preset's, e.g. ``canonflow.presets.load_preset("sample", "generic").settings()``):
    ``chains``, ``samples``, ``warmup``, ``hmc_steps`` (``neutra_steps``, default ``hmc_steps``), the flows'
    ``blocks``, ``hidden``, ``leapfrog_steps``, ``linear_leapfrog`` and layer settings (``householder``,
    ``momentum``, ``point``, ``activation``, ``linear_skip``), and their training ``batch``, ``anneal`` and
    ``objective``; ``importance_draws`` (default 20,000) of each flow estimate ``log Z``. ``training``: the
    :class:`~canonflow.training.TrainConfig` of each flow in :data:`FLOWS`; ``precondition``: as
    :func:`~canonflow.sampling.train_sampler`, fitted once for both flows (with the generator ``train_sampler`` seeds
    from the first flow's ``TrainConfig.seed``). The flows are initialized from torch's global random state;
    everything else draws from ``generator``. ``metric``: the adapted metric of ``sampler`` on the target and in
    the latent space (one of :data:`~canonflow.sampling.euclidean_metric.METRICS`, as for
    :func:`~canonflow.sampling.hmc`: ``"auto"`` is dense for ``d ≤ 50``).
    """
    check_choice(sampler, SAMPLERS, "sampler", "compare_samplers")
    check_choice(metric, METRICS, "metric", "compare_samplers")
    if not isinstance(precondition, Preconditioner):
        check_choice(precondition, PRECONDITIONERS, "precondition", "compare_samplers")
    chains, samples, warmup, potential = settings["chains"], settings["samples"], settings["warmup"], target.potential
    start = target.initial(chains, generator)
    steps = {"num_steps": settings["hmc_steps"]} if sampler == "hmc" else {}
    steps["metric"] = metric
    direct, latent = (hmc, neutra_hmc) if sampler == "hmc" else (nuts, neutra_nuts)
    draws = {sampler: direct(potential, start, samples, warmup=warmup, generator=generator, **steps)}
    layers = {key: settings[key] for key in LAYER_SETTINGS}
    flows = {
        "canonical": FlowSampler.canonical(target.dim, blocks=settings["blocks"], hidden=settings["hidden"], **layers),
        "leapfrog": FlowSampler.leapfrog(
            target.dim, steps=settings["leapfrog_steps"], hidden=settings["hidden"],
            linear=settings["linear_leapfrog"], **layers,
        ),
    }  # fmt: skip
    summaries = {}
    if (
        isinstance(precondition, str) and precondition != "none"
    ):  # one fit for both: train_sampler's from the first seed
        seeded = torch.Generator().manual_seed(training[FLOWS[0]].seed + 2)
        precondition = fit_preconditioner(potential, target.dim, precondition, generator=seeded)
    for name, flow in flows.items():
        flow.to(dtype=dtype, device=device)
        trained = train_sampler(
            flow, potential, training[name], settings["batch"], anneal=settings["anneal"],
            objective=settings["objective"], precondition=precondition,
        )  # fmt: skip
        flows[name] = flow.to(dtype=torch.float64, device="cpu")
        summaries[name] = {
            "seconds": trained.seconds, "steps": trained.steps, "best_reverse_kl_bound": trained.best_validation
        }  # fmt: skip
    if sampler == "hmc":
        steps["num_steps"] = settings.get("neutra_steps", settings["hmc_steps"])
    canonical, leapfrog = flows["canonical"], flows["leapfrog"]
    draws[f"neutra_{sampler}"] = latent(
        canonical, potential, samples, chains, generator=generator, warmup=warmup, **steps
    )
    draws["flow_mcmc"] = flow_mcmc(canonical, potential, samples, chains, generator=generator)
    draws["learned_leapfrog_mcmc"] = flow_mcmc(leapfrog, potential, samples, chains, generator=generator)
    scores = {sampler: sampler_metrics(result, target) for sampler, result in draws.items()}
    for score in scores.values():
        score[f"ess_per_evaluation_vs_{sampler}"] = score["ess_per_evaluation"] / scores[sampler]["ess_per_evaluation"]
    draws_of_flow = settings.get("importance_draws", 20000)
    for name, flow in flows.items():
        started = time.perf_counter()
        resampled = importance_resample(flow, potential, draws_of_flow, 1000, generator=generator)
        summaries[name] |= {
            f"importance_ess_of_{draws_of_flow}": resampled.ess,
            "log_normalizer_estimate": resampled.log_normalizer,
            "importance_seconds": time.perf_counter() - started,
            "parameters": sum(p.numel() for p in flow.parameters()),
        }
    return SamplerComparison(draws, scores, flows, summaries)
