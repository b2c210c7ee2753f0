"""Tune the leapfrog steps per transition of plain HMC and NeuTra-HMC on a target, over several seeds.

    python experiments/sampling_steps.py --target banana --model experiments/results/sampling_banana/model.pt \
        --out experiments/results/sampling_banana/steps

For each ``L`` in ``--hmc-steps`` (plain HMC) and ``--neutra-steps`` (NeuTra-HMC on the trained canonical flow
``--model``, a ``model.pt`` written by ``canonflow sample``) and each of ``--seeds`` seeds, runs the sampler as
``canonflow sample`` does (16 chains, step size and diagonal mass adapted during warm-up; float64 on the CPU;
seeds ``--seed`` to ``--seed + --seeds − 1``) and records the ESS per evaluation of ``U`` (min over
coordinates of the bulk ESS / gradient evaluations while sampling).
metrics.json ``results``: per sampler and ``L`` the per-seed values, their mean and standard error, the best
``L`` of each sampler, and ``neutra_vs_hmc``, the ratio of the best means. One seed's ESS varies by tens of
percent, which is why ``canonflow sample``'s single reference run is not used to choose ``L``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

import canonflow
from canonflow.checkpoint import atomic_write
from canonflow.cli.catalog import Command
from canonflow.cli.options import COMMON_OPTIONS, Option, complete
from canonflow.cli.run import script_main
from canonflow.plots import pyplot
from canonflow.run_directory import Run
from canonflow.sampling import TARGETS, SamplingResult, get_target, hmc, neutra_hmc


def _step_list(value: str, name: str, who: str) -> None:
    steps = [int(s) if s.strip().isdigit() else 0 for s in value.split(",")]
    if min(steps) <= 0:
        raise ValueError(f"{who}: expected {name} to be comma-separated positive integers, got {value!r}")


OPTIONS = (
    Option("target", "banana", "target density", choices=sorted(TARGETS)),
    Option("model", "", "model.pt of a canonical flow written by `canonflow sample` (empty: HMC only)"),
    Option("hmc_steps", "1,2,3,5,10", "leapfrog steps per transition to try for plain HMC", check=_step_list),
    Option("neutra_steps", "1,2,3,5", "leapfrog steps per transition to try for NeuTra-HMC", check=_step_list),
    Option("seeds", 8, "seeds per setting"),
    Option("chains", 16, "chains per run"),
    Option("samples", 1000, "draws per chain after warm-up"),
    Option("warmup", 500, "warm-up iterations (step size and mass adaptation)"),
    *COMMON_OPTIONS,
)


def ess_per_evaluation(result: SamplingResult) -> float:
    """Min over coordinates of the bulk ESS, per evaluation of ``U`` while sampling."""
    return float(np.min(result.summary()["ess_bulk"])) / result.evaluations


def sweep(sample: Callable[[int, torch.Generator], SamplingResult], steps: list[int], seeds: range) -> dict[str, Any]:
    """``sample(num_steps, generator)`` for every ``L`` in ``steps`` and seed in ``seeds``: per-``L`` values and
    their mean and standard error, and the best ``L``."""
    table = {}
    for num_steps in steps:
        values = [ess_per_evaluation(sample(num_steps, torch.Generator().manual_seed(seed))) for seed in seeds]
        table[str(num_steps)] = {
            "ess_per_evaluation": values,
            "mean": float(np.mean(values)),
            "standard_error": float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None,
        }
    best = max(table, key=lambda key: table[key]["mean"])
    return {"steps": table, "best_steps": int(best), "best_mean": table[best]["mean"]}


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Sweep the leapfrog steps of HMC (and NeuTra-HMC when a model is given); see the module docstring."""
    config = complete(OPTIONS, config)
    target = get_target(config["target"])
    chains, samples, warmup = config["chains"], config["samples"], config["warmup"]
    seeds = range(config["seed"], config["seed"] + config["seeds"])
    if config["quick"]:
        samples, warmup = 100, 100

    def plain(num_steps: int, generator: torch.Generator) -> SamplingResult:
        start = target.initial(chains, generator)
        return hmc(target.potential, start, samples, warmup=warmup, num_steps=num_steps, generator=generator)

    def parse(text: str) -> list[int]:
        return [int(s) for s in text.split(",")]

    results: dict[str, Any] = {
        "target": config["target"],
        "hmc": sweep(plain, parse(config["hmc_steps"]), seeds),
    }
    if config["model"]:
        flow = canonflow.load(config["model"]).double()

        def latent(num_steps: int, generator: torch.Generator) -> SamplingResult:
            return neutra_hmc(
                flow, target.potential, samples, chains, generator=generator, warmup=warmup, num_steps=num_steps
            )

        results["neutra_hmc"] = sweep(latent, parse(config["neutra_steps"]), seeds)
        results["neutra_vs_hmc"] = results["neutra_hmc"]["best_mean"] / results["hmc"]["best_mean"]
    if run.writes:
        plot(results, run.figures() / "steps.png")
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    """ESS per evaluation against the leapfrog steps per transition, mean ± standard error over seeds."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for sampler in ("hmc", "neutra_hmc"):
        if sampler in results:
            table = results[sampler]["steps"]
            steps = [int(k) for k in table]
            means = [v["mean"] for v in table.values()]
            errors = [v["standard_error"] or 0.0 for v in table.values()]
            ax.errorbar(steps, means, yerr=errors, marker="o", capsize=3, label=sampler)
    ax.set(xscale="log", yscale="log", xlabel="leapfrog steps per transition L", ylabel="ESS per evaluation")
    ax.set_title(results["target"])
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda stream: fig.savefig(stream, dpi=120, format="png"))
    plt.close(fig)


def report(results: dict[str, Any]) -> list[str]:
    """Per sampler the ESS per evaluation of each ``L`` (mean ± s.e. over seeds), and NeuTra-HMC over HMC."""
    lines = []
    for sampler in ("hmc", "neutra_hmc"):
        if sampler in results:
            cells = ", ".join(
                f"L={k}: {v['mean']:.3e} ± {v['standard_error'] or 0:.1e}" for k, v in results[sampler]["steps"].items()
            )
            lines.append(
                f"{sampler} ESS/eval (mean ± s.e. over seeds): {cells}; best L = {results[sampler]['best_steps']}"
            )
    if "neutra_vs_hmc" in results:
        lines.append(f"NeuTra-HMC / HMC at their best L: {results['neutra_vs_hmc']:.2f}×")
    return lines


COMMAND = Command(
    name="sampling-steps",
    help="tune the leapfrog steps of HMC and NeuTra-HMC over seeds",
    description=__doc__,
    options=OPTIONS,
    run=run,
    report=report,
    resumable=False,
)

if __name__ == "__main__":
    raise SystemExit(script_main(COMMAND, description=__doc__))
