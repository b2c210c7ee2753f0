"""``canonflow sample``: compare samplers on a hard target: tuned HMC, NeuTra-HMC, flow-MCMC, learned leapfrog.

Trains a canonical :class:`~canonflow.sampling.FlowSampler` and a leapfrog one (reverse KL, forward KL by
self-normalized importance sampling, or both; per-target choices in :data:`TUNED`), then samples the target
with tuned HMC, NeuTra-HMC and flow-MCMC (with either flow). Results: ``target``, ``dim``,
``settings``, ``samplers`` (per sampler: bulk/tail ESS, R̂, ESS per target evaluation and per second and
relative to HMC, acceptance, divergences, moment errors in Monte Carlo standard errors, and for the mixture
the mode fractions), ``training`` (per flow: seconds, steps, best reverse-KL bound, importance-sampling ESS
and ``log Z`` estimate, parameters), ``exact_iid_reference`` (the moment check applied to exact i.i.d. draws
of the same size, to calibrate it) and ``notes``. Writes ``model.pt`` (the canonical flow), ``leapfrog.pt``,
their ``*_training.pt`` and ``figures/{samples,traces,ess}.png``. ``experiments/sampling_table.py`` prints
the table of several runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from canonflow.checkpoint import save_model
from canonflow.cli.run import (
    COMMON_OPTIONS,
    TRAINING_OPTIONS,
    Command,
    Option,
    complete,
    figures_dir,
    pyplot,
    torch_dtype,
    training_options,
)
from canonflow.sampling import (
    TARGETS,
    FlowSampler,
    GaussianMixture,
    SamplingResult,
    flow_mcmc,
    get_target,
    hmc,
    importance_resample,
    mcse_mean,
    neutra_hmc,
    train_sampler,
)
from canonflow.sampling.targets import Target
from canonflow.training import TrainConfig

__all__ = ["COMMAND", "OPTIONS", "TUNED", "run", "settings"]

OPTIONS = (
    Option("target", "banana", "target density", choices=sorted(TARGETS)),
    *TRAINING_OPTIONS,
    *COMMON_OPTIONS,
)
NOTES = (
    "ess_per_evaluation = min over coordinates of bulk ESS / (gradient + potential evaluations of U during "
    "sampling); a gradient counts as one evaluation (favours HMC). Warm-up and training costs are reported "
    "separately (warmup_*, training)."
)


TUNED: dict[str, dict[str, Any]] = {
    "banana": {
        "train_steps": 2000,
        "objective": "both",
        "hmc_steps": 5,
        "neutra_steps": 2,
        "hidden": 32,
        "leapfrog_steps": 4,
        "point": 1,
        "momentum": "learned",
    },
    "funnel": {
        "train_steps": 6000,
        "lr": 8e-3,
        "objective": "both",
        "blocks": 2,
        "point": 1,
        "momentum": "learned",
        "linear_skip": 1,
        "leapfrog_steps": 2,
        "samples": 500,
        "warmup": 300,
    },
    "mixture": {"train_steps": 3000, "objective": "forward", "anneal": 0.5},
    "ring2d": {"momentum": "learned", "objective": "both", "train_steps": 2000, "lr": 5e-3},
    "ill_gaussian": {
        "train_steps": 10000,
        "samples": 500,
        "warmup": 300,
        "lr": 1e-2,
        "blocks": 1,
        "hidden": 32,
        "householder": 49,
        "leapfrog_steps": 2,
        "hmc_steps": 40,
        "neutra_steps": 10,
    },
}
"""Per-target choices (``experiments/results/SAMPLING.md``, "Design choices"): optimizer steps, learning rate,
objective, Householder reflections per linear layer, auxiliary momenta, point layers, the activation of the point
layers' and momenta's networks and their exact linear paths (``linear_skip``: in ``v``, the funnel's first
coordinate), and leapfrog steps of HMC (tuned over {3, 5, 10, 20, 40}), NeuTra-HMC and the
learned leapfrog flow."""


def settings(target: str, quick: bool) -> dict[str, Any]:
    """Chain, sampler and flow sizes for ``target``: the defaults with :data:`TUNED` over them (``quick``: a
    smoke run that keeps the tuned architecture and objective but not the budgets)."""
    base = {
        "chains": 16,
        "samples": 100 if quick else 1000,
        "warmup": 100 if quick else 500,
        "hmc_steps": 10,
        "train_steps": 50 if quick else 1000,
        "lr": 2e-3,
        "batch": 128 if quick else 256,
        "blocks": 2 if quick else 4,
        "hidden": 32 if quick else 64,
        "householder": None,
        "momentum": "standard",
        "point": 0,
        "activation": "tanh",
        "linear_skip": 0,
        "objective": "reverse",
        "leapfrog_steps": 4 if quick else 8,
        "anneal": 0.0,
        "linear_leapfrog": get_target(target).dim > 2,
    }
    tuned = dict(TUNED.get(target, {}))
    if quick:
        for key in ("train_steps", "samples", "warmup"):
            tuned.pop(key, None)
    return base | tuned


def moment_errors(samples: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> dict[str, Any]:
    """Errors of the sample means and variances in Monte Carlo standard errors and relative to the truth."""
    draws = samples.detach().double().numpy()
    centred = (draws - mean.numpy()) ** 2
    flat, flat_c = draws.reshape(-1, draws.shape[-1]), centred.reshape(-1, draws.shape[-1])
    z_mean = np.abs(flat.mean(0) - mean.numpy()) / np.asarray(mcse_mean(draws))
    z_var = np.abs(flat_c.mean(0) - variance.numpy()) / np.asarray(mcse_mean(centred))
    rel_var = np.abs(flat_c.mean(0) - variance.numpy()) / variance.numpy()
    return {
        "max_mean_error_in_se": float(z_mean.max()),
        "max_variance_error_in_se": float(z_var.max()),
        "max_relative_variance_error": float(rel_var.max()),
        "within_4_se": bool(z_mean.max() < 4 and z_var.max() < 4),
    }


def sampler_metrics(result: SamplingResult, target: Target) -> dict[str, Any]:
    """Efficiency and correctness of one sampler's run."""
    summary = result.summary()
    evaluations = result.evaluations
    ess_min = float(np.min(summary["ess_bulk"]))
    out = {
        "ess_bulk_min": ess_min,
        "ess_bulk_median": float(np.median(summary["ess_bulk"])),
        "ess_tail_min": float(np.min(summary["ess_tail"])),
        "rhat_max": float(np.max(summary["rhat"])),
        "gradient_evaluations": result.gradient_evaluations,
        "potential_evaluations": result.potential_evaluations,
        "ess_per_evaluation": ess_min / evaluations,
        "sampling_seconds": result.seconds,
        "ess_per_second": ess_min / result.seconds,
        "warmup_seconds": result.warmup_seconds,
        "warmup_evaluations": result.warmup_gradient_evaluations + result.warmup_potential_evaluations,
        "acceptance_rate": result.acceptance_rate,
        "divergences": result.num_divergent,
        "warmup_divergences": result.warmup_divergences,
        "step_size": result.step_size,
        **moment_errors(result.samples, target.mean, target.variance),
    }
    if isinstance(target, GaussianMixture):
        left = (target.mode_of(result.samples) == 0).double().numpy()
        out["left_mode_fraction"] = float(left.mean())
        out["left_mode_se"] = float(mcse_mean(left)) if np.ptp(left) > 0 else 0.0
        out["left_mode_exact"] = target.weight
        per_chain = left.mean(0)
        out["chains_visiting_both_modes"] = int(((per_chain > 0) & (per_chain < 1)).sum())
    return out


def run(config: dict[str, Any], out: Path | None = None, *, progress: bool = True, resume: bool = False) -> dict:
    """Train both flows and compare the samplers on ``config["target"]``; write models and figures to ``out``;
    return the results of the module docstring."""
    config = complete(OPTIONS, config)
    name, seed = config["target"], config["seed"]
    torch.manual_seed(seed)
    target = get_target(name)
    cfg = settings(name, config["quick"])
    dtype, device = torch_dtype(config), torch.device(config["device"])
    gen = torch.Generator().manual_seed(seed)
    chains, samples = cfg["chains"], cfg["samples"]
    results = {
        "hmc": hmc(
            target.potential,
            target.initial(chains, gen),
            samples,
            warmup=cfg["warmup"],
            num_steps=cfg["hmc_steps"],
            generator=gen,
        )
    }
    layers = {key: cfg[key] for key in ("householder", "momentum", "point", "activation", "linear_skip")}
    flows = {
        "canonical": FlowSampler.canonical(target.dim, blocks=cfg["blocks"], hidden=cfg["hidden"], **layers),
        "leapfrog": FlowSampler.leapfrog(
            target.dim, steps=cfg["leapfrog_steps"], hidden=cfg["hidden"], linear=cfg["linear_leapfrog"], **layers
        ),
    }
    training = {}
    for flow_name, flow in flows.items():
        flow.to(dtype=dtype, device=device)
        preset = {"steps": cfg["train_steps"], "lr": cfg["lr"], "grad_clip": 10.0}
        options = training_options(
            config,
            out,
            preset,
            description=f"{flow_name} flow",
            progress=progress,
            resume=resume,
            checkpoint=f"{flow_name}_training.pt",
        )
        options["eval_every"] = max(options["steps"] // 10, 1)
        trained = train_sampler(
            flow,
            target.potential,
            TrainConfig(**options),
            batch_size=cfg["batch"],
            anneal=cfg["anneal"],
            objective=cfg["objective"],
        )
        flows[flow_name] = flow.to(dtype=torch.float64, device="cpu")
        training[flow_name] = {
            "seconds": trained.seconds,
            "steps": trained.steps,
            "best_reverse_kl_bound": trained.best_validation,
        }
    flow, leap = flows["canonical"], flows["leapfrog"]
    neutra_steps = cfg.get("neutra_steps", cfg["hmc_steps"])
    results["neutra_hmc"] = neutra_hmc(
        flow, target.potential, samples, chains, generator=gen, warmup=cfg["warmup"], num_steps=neutra_steps
    )
    results["flow_mcmc"] = flow_mcmc(flow, target.potential, samples, chains, generator=gen)
    results["learned_leapfrog_mcmc"] = flow_mcmc(leap, target.potential, samples, chains, generator=gen)

    scores = {sampler: sampler_metrics(result, target) for sampler, result in results.items()}
    base = scores["hmc"]["ess_per_evaluation"]
    for score in scores.values():
        score["ess_per_evaluation_vs_hmc"] = score["ess_per_evaluation"] / base
    for flow_name, model in flows.items():
        started = time.perf_counter()
        resampled = importance_resample(model, target.potential, 20000, 1000, generator=gen)
        training[flow_name]["importance_ess_of_20000"] = resampled.ess
        training[flow_name]["log_normalizer_estimate"] = resampled.log_normalizer
        training[flow_name]["importance_seconds"] = time.perf_counter() - started
        training[flow_name]["parameters"] = sum(p.numel() for p in model.parameters())
    summary = {"target": name, "dim": target.dim, "settings": cfg, "samplers": scores, "training": training}
    exact = target.sample(chains * samples, gen).reshape(samples, chains, target.dim)
    summary["exact_iid_reference"] = moment_errors(exact, target.mean, target.variance)
    summary["notes"] = NOTES
    if out is not None:
        extra = {"command": "sample", "target": name, "config": config}
        save_model(out / "model.pt", flow, extra=extra)
        save_model(out / "leapfrog.pt", leap, extra=extra)
        plot(target, results, scores, figures_dir(out))
    return summary


def evaluate_checkpoint(model: torch.nn.Module, extra: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Importance-sampling ``log Z`` estimate and ESS of a flow written by ``canonflow sample``."""
    trained = complete(OPTIONS, extra.get("config", {"target": extra["target"]}))
    target = get_target(trained["target"])
    num = 2000 if config["quick"] else 20000
    resampled = importance_resample(
        model.double(), target.potential, num, 100, generator=torch.Generator().manual_seed(trained["seed"])
    )
    return {
        "importance_samples": num,
        "importance_ess": resampled.ess,
        "log_normalizer_estimate": resampled.log_normalizer,
    }


def plot(target: Target, results: dict[str, SamplingResult], scores: dict[str, Any], figures: Path) -> None:
    """``samples.png`` (first two coordinates), ``traces.png`` and ``ess.png`` (ESS per evaluation)."""
    plt = pyplot()
    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4), squeeze=False)
    exact = target.sample(4000, torch.Generator().manual_seed(0)).numpy()
    lo, hi = np.quantile(exact[:, :2], [0.005, 0.995], axis=0)
    pad = 0.2 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    grid = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150)), -1)
    if target.dim == 2:
        flat = torch.from_numpy(grid.reshape(-1, 2))
        level = target.potential(flat).numpy().reshape(150, 150)
    for ax, name in zip(axes[0], names, strict=True):
        draws = results[name].samples[:, :, :2].reshape(-1, 2).numpy()
        if target.dim == 2:
            ax.contour(grid[..., 0], grid[..., 1], np.exp(-(level - level.min())), levels=8, colors="k", linewidths=0.6)
        else:
            ax.scatter(exact[:, 0], exact[:, 1], s=1, c="0.7", label="exact")
        ax.scatter(draws[:, 0], draws[:, 1], s=1, alpha=0.3)
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), title=name, xlabel="q1", ylabel="q2")
    fig.tight_layout()
    fig.savefig(figures / "samples.png", dpi=80)
    plt.close(fig)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.8 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        ax.plot(results[name].samples[:, :4, 0].numpy(), lw=0.6)
        ax.set_ylabel(name, fontsize=7)
    axes[-1, 0].set_xlabel("iteration (q1, 4 chains)")
    fig.tight_layout()
    fig.savefig(figures / "traces.png", dpi=80)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(names, [scores[name]["ess_per_evaluation"] for name in names])
    ax.set(yscale="log", ylabel="min bulk ESS / target evaluation")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(figures / "ess.png", dpi=80)
    plt.close(fig)


def report(results: dict[str, Any]) -> list[str]:
    """One line per sampler: ESS per evaluation (and relative to HMC), acceptance, moment check."""
    return [
        f"{name:24s} ESS/eval {score['ess_per_evaluation']:.2e} ({score['ess_per_evaluation_vs_hmc']:.1f}x HMC)"
        f"  acc {score['acceptance_rate']:.2f}  moments within 4 se: {score['within_4_se']}"
        for name, score in results["samplers"].items()
    ]


COMMAND = Command(
    name="sample",
    help="compare HMC, NeuTra-HMC and flow-MCMC samplers on a target density",
    description=__doc__,
    options=OPTIONS,
    run=run,
    report=report,
    evaluate_checkpoint=evaluate_checkpoint,
)
