"""Compare samplers on a hard Boltzmann target: tuned HMC, NeuTra-HMC, flow-MCMC and a learned leapfrog sampler.

    PYTHONPATH=. python experiments/sampling.py --target banana --out experiments/results/sampling_banana [--quick]

Writes ``metrics.json`` (per sampler: bulk/tail ESS, R̂, ESS per target evaluation, ESS per second,
acceptance, divergences, moment errors in Monte Carlo standard errors; training cost separately), the
trained canonical flow ``model.pt`` (and ``leapfrog.pt``), and figures. Uses only the public API.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from canonflow.checkpoint import save_model  # noqa: E402
from canonflow.sampling import (  # noqa: E402
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
from canonflow.training import TrainConfig  # noqa: E402

# Per-target training choices (experiments/results/SAMPLING.md, "Design choices"): optimizer steps, learning rate,
# objective (reverse KL, self-normalized-IS forward KL, or both), Householder reflections per linear layer,
# auxiliary momenta, and the number of leapfrog steps of HMC/NeuTra-HMC and of the learned leapfrog flow.
TUNED: dict[str, dict] = {
    "banana": {
        "train_steps": 2000,
        "objective": "both",
        "hmc_steps": 5,
        "hidden": 32,
        "leapfrog_steps": 4,
        "point": 1,
        "momentum": "learned",
    },
    "funnel": {
        "train_steps": 1200,
        "lr": 8e-3,
        "blocks": 2,
        "point": 1,
        "momentum": "learned",
        "leapfrog_steps": 2,
        "samples": 500,
        "warmup": 300,
    },
    "mixture": {"train_steps": 3000, "objective": "forward", "anneal": 0.5},
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


def settings(target: str, quick: bool) -> dict:
    base = {
        "chains": 16,
        "samples": 200 if quick else 1000,
        "warmup": 200 if quick else 500,
        "hmc_steps": 10,
        "train_steps": 150 if quick else 1000,
        "lr": 2e-3,
        "batch": 128 if quick else 256,
        "blocks": 2 if quick else 4,
        "hidden": 32 if quick else 64,
        "householder": None,
        "momentum": "standard",
        "point": 0,
        "objective": "reverse",
        "leapfrog_steps": 4 if quick else 8,
        "anneal": 0.0,
        "linear_leapfrog": get_target(target).dim > 2,
    }
    tuned = dict(TUNED.get(target, {}))
    if quick:  # keep the tuned architecture and objective, not the budgets
        for key in ("train_steps", "samples", "warmup"):
            tuned.pop(key, None)
    return base | tuned


def moment_errors(samples: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> dict:
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


def metrics(result: SamplingResult, target) -> dict:  # noqa: ANN001
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


def train(model: FlowSampler, target, cfg: dict, out: Path, name: str, seed: int) -> dict:  # noqa: ANN001
    config = TrainConfig(
        steps=cfg["train_steps"],
        lr=cfg["lr"],
        grad_clip=10.0,
        eval_every=max(cfg["train_steps"] // 10, 1),
        checkpoint=str(out / f"{name}_training.pt"),
        checkpoint_every=max(cfg["train_steps"] // 5, 1),
        resume=True,
        seed=seed,
        description=f"{name} flow",
        time_limit=cfg["train_seconds"],
    )
    result = train_sampler(
        model, target.potential, config, batch_size=cfg["batch"], anneal=cfg["anneal"], objective=cfg["objective"]
    )
    (out / f"{name}_training.pt").unlink(missing_ok=True)
    return {"seconds": result.seconds, "steps": result.steps, "best_reverse_kl_bound": result.best_validation}


def figures(target, results: dict[str, SamplingResult], scores: dict, out: Path) -> None:  # noqa: ANN001
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
    fig.savefig(out / "samples.png", dpi=80)
    plt.close(fig)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.8 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        ax.plot(results[name].samples[:, :4, 0].numpy(), lw=0.6)
        ax.set_ylabel(name, fontsize=7)
    axes[-1, 0].set_xlabel("iteration (q1, 4 chains)")
    fig.tight_layout()
    fig.savefig(out / "traces.png", dpi=80)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(names, [scores[name]["ess_per_evaluation"] for name in names])
    ax.set(yscale="log", ylabel="min bulk ESS / target evaluation")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "ess.png", dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(TARGETS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-steps", type=int, default=None, help="optimizer steps per trained flow")
    parser.add_argument("--train-seconds", type=float, default=None, help="wall-time limit per trained flow")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    target = get_target(args.target)
    cfg = settings(args.target, args.quick) | {"train_seconds": args.train_seconds}
    if args.train_steps is not None:
        cfg["train_steps"] = args.train_steps
    gen = torch.Generator().manual_seed(args.seed)
    chains, samples = cfg["chains"], cfg["samples"]

    results: dict[str, SamplingResult] = {}
    results["hmc"] = hmc(
        target.potential,
        target.initial(chains, gen),
        samples,
        warmup=cfg["warmup"],
        num_steps=cfg["hmc_steps"],
        generator=gen,
    )

    options = {key: cfg[key] for key in ("householder", "momentum", "point")}
    flow = FlowSampler.canonical(target.dim, blocks=cfg["blocks"], hidden=cfg["hidden"], **options).double()
    training = {"canonical": train(flow, target, cfg, args.out, "canonical", args.seed)}
    leap = FlowSampler.leapfrog(
        target.dim, steps=cfg["leapfrog_steps"], hidden=cfg["hidden"], linear=cfg["linear_leapfrog"], **options
    ).double()
    training["leapfrog"] = train(leap, target, cfg, args.out, "leapfrog", args.seed)

    neutra_steps = cfg.get("neutra_steps", cfg["hmc_steps"])
    results["neutra_hmc"] = neutra_hmc(
        flow, target.potential, samples, chains, generator=gen, warmup=cfg["warmup"], num_steps=neutra_steps
    )
    results["flow_mcmc"] = flow_mcmc(flow, target.potential, samples, chains, generator=gen)
    results["learned_leapfrog_mcmc"] = flow_mcmc(leap, target.potential, samples, chains, generator=gen)

    scores = {name: metrics(result, target) for name, result in results.items()}
    base = scores["hmc"]["ess_per_evaluation"]
    for score in scores.values():
        score["ess_per_evaluation_vs_hmc"] = score["ess_per_evaluation"] / base
    for name, model in (("canonical", flow), ("leapfrog", leap)):
        started = time.perf_counter()
        resampled = importance_resample(model, target.potential, 20000, 1000, generator=gen)
        training[name]["importance_ess_of_20000"] = resampled.ess
        training[name]["log_normalizer_estimate"] = resampled.log_normalizer
        training[name]["importance_seconds"] = time.perf_counter() - started
        training[name]["parameters"] = sum(p.numel() for p in model.parameters())
    report = {"target": args.target, "dim": target.dim, "settings": cfg, "seed": args.seed, "samplers": scores}
    report["training"] = training
    exact = target.sample(chains * samples, gen).reshape(samples, chains, target.dim)
    report["exact_iid_reference"] = moment_errors(exact, target.mean, target.variance)
    report["notes"] = (
        "ess_per_evaluation = min over coordinates of bulk ESS / (gradient + potential evaluations of U during "
        "sampling); a gradient counts as one evaluation (favours HMC). Warm-up and training costs are reported "
        "separately (warmup_*, training)."
    )
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2))
    save_model(args.out / "model.pt", flow, extra={"target": args.target})
    save_model(args.out / "leapfrog.pt", leap, extra={"target": args.target})
    figures(target, results, scores, args.out)
    for name, score in scores.items():
        line = (
            f"{name:24s} ESS/eval {score['ess_per_evaluation']:.2e} ({score['ess_per_evaluation_vs_hmc']:.1f}x HMC)"
            f"  acc {score['acceptance_rate']:.2f}  moments within 4 se: {score['within_4_se']}"
        )
        print(line)
    if math.isfinite(base):
        print(f"training: {json.dumps(training)}")


if __name__ == "__main__":
    main()
