"""canonflow sample: compare samplers on a hard target: tuned HMC, NeuTra-HMC, flow-MCMC, learned leapfrog.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch

from canonflow.cli.catalog import SUBCOMMANDS
from canonflow.cli.options import complete, import_object
from canonflow.cli.run import command
from canonflow.plots import plot_samplers
from canonflow.presets import GENERIC, load_preset
from canonflow.run_directory import Run
from canonflow.sampling import (
    FlowSampler,
    Target,
    flow_mcmc,
    get_target,
    hmc,
    importance_resample,
    moment_errors,
    neutra_hmc,
    sampler_metrics,
    train_sampler,
)
from canonflow.training import TrainConfig
from canonflow.validation import as_dtype

__all__ = ["COMMAND", "OPTIONS", "report", "run", "settings", "target_of"]

OPTIONS = SUBCOMMANDS["sample"].options
NOTES = (
    "ess_per_evaluation = min over coordinates of bulk ESS / (gradient + potential evaluations of U during "
    "sampling); a gradient counts as one evaluation (favours HMC). Warm-up and training costs are reported "
    "separately (warmup_*, training)."
)
LAYERS = ("householder", "momentum", "point", "activation", "linear_skip")


def target_of(name: str) -> Target:
    """The target ``name``: a catalogue name, or the user's :class:`~canonflow.sampling.Target` as
    ``MODULE:NAME`` or ``FILE.py:NAME`` (e.g. made with ``Target.from_potential``)."""
    return import_object(name, Target, "sample: target") if ":" in name else get_target(name)


def settings(name: str, target: Target, quick: bool) -> dict[str, Any]:
    """Chain, sampler and flow sizes for the target ``name``: its preset (the generic one for the user's own
    target; ``quick``: a smoke run that keeps the tuned architecture and objective but not the budgets), with
    ``householder`` (``None``: the layer's default) and ``linear_leapfrog`` (default: ``dim > 2``) filled in."""
    found = load_preset("sample", GENERIC if ":" in name else name).settings(quick)
    return {"householder": None, "linear_leapfrog": target.dim > 2} | found


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Train both flows and compare the samplers on ``config["target"]``; write models and figures to ``run``'s
    directory; return the results of the module docstring."""
    config = complete(OPTIONS, config)
    name, seed = config["target"], config["seed"]
    torch.manual_seed(seed)
    target, gen = target_of(name), torch.Generator().manual_seed(seed)
    cfg = settings(name, target, config["quick"])
    chains, samples, warmup, potential = cfg["chains"], cfg["samples"], cfg["warmup"], target.potential
    start = target.initial(chains, gen)
    results = {"hmc": hmc(potential, start, samples, warmup=warmup, num_steps=cfg["hmc_steps"], generator=gen)}
    layers = {key: cfg[key] for key in LAYERS}
    flows = {
        "canonical": FlowSampler.canonical(target.dim, blocks=cfg["blocks"], hidden=cfg["hidden"], **layers),
        "leapfrog": FlowSampler.leapfrog(
            target.dim, steps=cfg["leapfrog_steps"], hidden=cfg["hidden"], linear=cfg["linear_leapfrog"], **layers
        ),
    }
    preset, training = {"steps": cfg["train_steps"], "lr": cfg["lr"], "grad_clip": 10.0}, {}
    for flow_name, flow in flows.items():
        flow.to(dtype=as_dtype(config["dtype"], "sample"), device=config["device"])
        checkpoint = f"{flow_name}_training.pt"
        options = run.training_options(config, preset, f"{flow_name} flow", checkpoint=checkpoint, evaluations=10)
        batch, anneal, objective = cfg["batch"], cfg["anneal"], cfg["objective"]
        trained = train_sampler(
            flow, potential, TrainConfig(**options), batch, anneal=anneal, objective=objective,
            precondition=config["precondition"],
        )  # fmt: skip
        flows[flow_name] = flow.to(dtype=torch.float64, device="cpu")
        bound = trained.best_validation
        training[flow_name] = {"seconds": trained.seconds, "steps": trained.steps, "best_reverse_kl_bound": bound}
    flow, leap = flows["canonical"], flows["leapfrog"]
    neutra_steps = cfg.get("neutra_steps", cfg["hmc_steps"])
    results["neutra_hmc"] = neutra_hmc(
        flow, potential, samples, chains, generator=gen, warmup=warmup, num_steps=neutra_steps
    )
    results["flow_mcmc"] = flow_mcmc(flow, potential, samples, chains, generator=gen)
    results["learned_leapfrog_mcmc"] = flow_mcmc(leap, potential, samples, chains, generator=gen)
    scores = {sampler: sampler_metrics(result, target) for sampler, result in results.items()}
    for score in scores.values():
        score["ess_per_evaluation_vs_hmc"] = score["ess_per_evaluation"] / scores["hmc"]["ess_per_evaluation"]
    for flow_name, model in flows.items():
        started = time.perf_counter()
        resampled = importance_resample(model, potential, 20000, 1000, generator=gen)
        training[flow_name] |= {
            "importance_ess_of_20000": resampled.ess,
            "log_normalizer_estimate": resampled.log_normalizer,
            "importance_seconds": time.perf_counter() - started,
            "parameters": sum(p.numel() for p in model.parameters()),
        }
    summary = {"target": name, "dim": target.dim, "settings": cfg, "samplers": scores, "training": training}
    summary |= {"exact_iid_reference": None, "notes": NOTES}
    if target.exact:
        exact = target.sample(chains * samples, gen).reshape(samples, chains, target.dim)
        summary["exact_iid_reference"] = moment_errors(exact, target.mean, target.variance)
    if run.writes:
        extra = {"command": "sample", "target": name, "config": config}
        run.save_model(flow, extra)
        run.save_model(leap, extra, "leapfrog.pt")
        plot_samplers(target, results, scores, run.figures())
    return summary


def evaluate_checkpoint(model: torch.nn.Module, trained: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Importance-sampling ``log Z`` estimate and ESS of a flow written by ``canonflow sample`` with the config
    ``trained``."""
    target = target_of(trained["target"])
    num = 2000 if config["quick"] else 20000
    generator = torch.Generator().manual_seed(trained["seed"])
    resampled = importance_resample(model.double(), target.potential, num, 100, generator=generator)
    return {
        "importance_samples": num,
        "importance_ess": resampled.ess,
        "log_normalizer_estimate": resampled.log_normalizer,
    }


def report(results: dict[str, Any]) -> list[str]:
    """One line per sampler: ESS per evaluation (and relative to HMC), acceptance, moment check."""
    return [
        f"{name:24s} ESS/eval {score['ess_per_evaluation']:.2e} ({score['ess_per_evaluation_vs_hmc']:.1f}x HMC)"
        f"  acc {score['acceptance_rate']:.2f}  R-hat {score['rhat_max']:.3f}"
        + (f"  moments within 4 se: {score['within_4_se']}" if "within_4_se" in score else "")
        for name, score in results["samplers"].items()
    ]


COMMAND = command(__name__)
