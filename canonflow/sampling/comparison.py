"""Samplers side by side on one target: HMC, NeuTra-HMC and flow-MCMC with a canonical and a learned-leapfrog flow.

What ``canonflow sample`` runs, as one call for the user's own :class:`~canonflow.sampling.Target`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from canonflow.sampling.flow_mcmc import flow_mcmc, importance_resample
from canonflow.sampling.hmc import hmc
from canonflow.sampling.metrics import sampler_metrics
from canonflow.sampling.model import FlowSampler
from canonflow.sampling.neutra import neutra_hmc
from canonflow.sampling.result import SamplingResult
from canonflow.sampling.targets import Target
from canonflow.sampling.training import train_sampler
from canonflow.training import TrainConfig

__all__ = ["FLOWS", "SamplerComparison", "compare_samplers"]

FLOWS = ("canonical", "leapfrog")
"""The two flows a comparison trains: ``FlowSampler.canonical`` and ``FlowSampler.leapfrog``."""
LAYER_SETTINGS = ("householder", "momentum", "point", "activation", "linear_skip")
IMPORTANCE_DRAWS = 20000


@dataclass
class SamplerComparison:
    """The outcome of :func:`compare_samplers`: each sampler's ``draws`` and ``scores``
    (:func:`~canonflow.sampling.sampler_metrics` plus ``ess_per_evaluation_vs_hmc``), the trained ``flows`` (float64,
    CPU) and, per flow, its ``training`` summary (seconds, steps, best reverse-KL bound, importance ESS of 20,000
    draws, ``log Z`` estimate, parameters)."""

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
    precondition: str = "moments",
) -> SamplerComparison:
    """Sample ``target`` with HMC, train a canonical and a learned-leapfrog :class:`FlowSampler`, then sample with
    NeuTra-HMC and flow-MCMC (independence Metropolis–Hastings) with each flow.

    ``settings`` (a ``sample`` preset's, e.g. ``canonflow.presets.load_preset("sample", "generic").settings()``):
    ``chains``, ``samples``, ``warmup``, ``hmc_steps`` (``neutra_steps``, default ``hmc_steps``), the flows'
    ``blocks``, ``hidden``, ``leapfrog_steps``, ``linear_leapfrog`` and layer settings (``householder``,
    ``momentum``, ``point``, ``activation``, ``linear_skip``), and their training ``batch``, ``anneal`` and
    ``objective``. ``training``: the :class:`~canonflow.training.TrainConfig` of each flow in :data:`FLOWS`;
    ``precondition``: as :func:`~canonflow.sampling.train_sampler`. The flows are initialized from torch's global
    random state; everything else draws from ``generator``.
    """
    chains, samples, warmup, potential = settings["chains"], settings["samples"], settings["warmup"], target.potential
    start = target.initial(chains, generator)
    draws = {"hmc": hmc(potential, start, samples, warmup=warmup, num_steps=settings["hmc_steps"], generator=generator)}
    layers = {key: settings[key] for key in LAYER_SETTINGS}
    flows = {
        "canonical": FlowSampler.canonical(target.dim, blocks=settings["blocks"], hidden=settings["hidden"], **layers),
        "leapfrog": FlowSampler.leapfrog(
            target.dim, steps=settings["leapfrog_steps"], hidden=settings["hidden"],
            linear=settings["linear_leapfrog"], **layers,
        ),
    }  # fmt: skip
    summaries = {}
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
    neutra_steps = settings.get("neutra_steps", settings["hmc_steps"])
    canonical, leapfrog = flows["canonical"], flows["leapfrog"]
    draws["neutra_hmc"] = neutra_hmc(
        canonical, potential, samples, chains, generator=generator, warmup=warmup, num_steps=neutra_steps
    )
    draws["flow_mcmc"] = flow_mcmc(canonical, potential, samples, chains, generator=generator)
    draws["learned_leapfrog_mcmc"] = flow_mcmc(leapfrog, potential, samples, chains, generator=generator)
    scores = {sampler: sampler_metrics(result, target) for sampler, result in draws.items()}
    for score in scores.values():
        score["ess_per_evaluation_vs_hmc"] = score["ess_per_evaluation"] / scores["hmc"]["ess_per_evaluation"]
    for name, flow in flows.items():
        started = time.perf_counter()
        resampled = importance_resample(flow, potential, IMPORTANCE_DRAWS, 1000, generator=generator)
        summaries[name] |= {
            f"importance_ess_of_{IMPORTANCE_DRAWS}": resampled.ess,
            "log_normalizer_estimate": resampled.log_normalizer,
            "importance_seconds": time.perf_counter() - started,
            "parameters": sum(p.numel() for p in flow.parameters()),
        }
    return SamplerComparison(draws, scores, flows, summaries)
