"""Variational free energies of Boltzmann distributions e^{-βH}: ``canonflow free-energy`` plus nflows baselines.

    python experiments/free_energy.py --system harmonic_chain --out experiments/results/free_energy_harmonic_chain
    python experiments/free_energy.py --system ring2d --out experiments/results/free_energy_ring2d
    python experiments/free_energy.py --system double_well --out experiments/results/free_energy_double_well

Runs ``canonflow free-energy`` (same flags) and, unless --no-baselines, trains nflows RealNVP and MAF baselines
of about the same size with a N(0, I) base by reverse KL for as many steps, with the same --gradient estimator,
reporting the same estimates under ``results.models.realnvp`` / ``.maf`` of metrics.json and in
figures/training_curves.png.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from baselines import baseline

import canonflow
from canonflow.cli import free_energy
from canonflow.cli.options import Option
from canonflow.cli.run import script_main
from canonflow.density import fit_variational
from canonflow.density.reference_runs import free_energy_entry
from canonflow.plots import plot_training_curves
from canonflow.run_directory import Run
from canonflow.systems import get_system
from canonflow.training import TrainConfig

BASELINES = {
    "harmonic_chain": dict(hidden=32, layers=4, blocks=1),
    "ring2d": dict(hidden=32, layers=6, blocks=1),
    "double_well": dict(hidden=24, layers=4, blocks=1),
}
OPTIONS = (
    Option("baselines", True, "also train the RealNVP and MAF baselines"),
    Option("baseline_time_limit", 300.0, "training time limit per baseline in seconds"),
)


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """``canonflow free-energy``'s run, then the baselines with as many steps."""
    own = {option.name for option in OPTIONS}
    results = free_energy.run({k: v for k, v in config.items() if k not in own}, run)
    if not config["baselines"]:
        return results
    name, beta, seed = config["system"], config["beta"], config["seed"]
    system = get_system(name)
    preset = free_energy.settings(config)
    for kind in ("realnvp", "maf"):
        torch.manual_seed(seed)
        model = baseline(kind, system.n, **BASELINES[name])
        train_config = TrainConfig(
            steps=preset["steps"],
            lr=preset["lr"],
            seed=seed,
            grad_clip=10.0,
            time_limit=config["baseline_time_limit"],
            progress=run.progress,
            description=f"{name}/{kind}",
        )
        with canonflow.validation(False):
            result = fit_variational(
                model, system, beta, batch_size=preset["batch_size"], config=train_config, gradient=preset["gradient"]
            )
            results["models"][kind] = free_energy_entry(model, system, beta, results["samples"], seed, result)
    if run.writes:
        ylabel, exact = "F_var (minibatch) − F  [nats]", results["exact_free_energy"]
        plot_training_curves(results, run.figures() / "training_curves.png", ylabel=ylabel, offset=exact, log=True)
    return results


def report(results: dict[str, Any]) -> list[str]:
    """``canonflow free-energy``'s lines and one per baseline."""
    baselines = [
        f"{kind}: F_var {entry['variational']:.5f}; importance-sampled F {entry['importance']:.5f} "
        f"({entry['steps_run']} steps, {entry['parameters']} parameters)"
        for kind, entry in results["models"].items()
        if kind != "canonflow"
    ]
    return [*free_energy.report(results), *baselines]


COMMAND = dataclasses.replace(
    free_energy.COMMAND,
    name="free-energy+baselines",
    options=(*free_energy.OPTIONS, *OPTIONS),
    run=run,
    report=report,
    distributed=False,  # the baselines train in one process; `canonflow free-energy --nproc N` runs canonflow's model
)

if __name__ == "__main__":
    raise SystemExit(script_main(COMMAND, description=__doc__, default_out="experiments/results/free_energy_{system}"))
