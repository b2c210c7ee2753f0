"""Maximum-likelihood density estimation: ``canonflow density`` plus nflows baselines.

    PYTHONPATH=. python experiments/density.py --dataset digits --out experiments/results/density_digits
    PYTHONPATH=. python experiments/density.py --dataset ring2d --out experiments/results/density_ring2d

Runs ``canonflow density`` (same flags; see its --help for the data and the reported NLLs) and, unless
--no-baselines, fits nflows RealNVP and MAF of about the same parameter count on q directly (not volume
preserving) for as many steps, reporting them under ``results.models.realnvp`` / ``.maf`` of metrics.json and in
the figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from baselines import baseline

import canonflow
from canonflow import load
from canonflow.cli import density
from canonflow.cli.options import Option
from canonflow.cli.run import script_main
from canonflow.data import load_dataset
from canonflow.density import fit_density
from canonflow.density.reference_runs import density_entry
from canonflow.run_directory import Run
from canonflow.training import TrainConfig

BASELINES = {
    "digits": {"realnvp": dict(hidden=96, layers=8, blocks=1), "maf": dict(hidden=104, layers=5, blocks=1)},
    "ring2d": {"realnvp": dict(hidden=20, layers=6, blocks=1), "maf": dict(hidden=20, layers=5, blocks=1)},
}
OPTIONS = (
    Option("baselines", True, "also fit the RealNVP and MAF baselines"),
    Option("baseline_time_limit", 300.0, "training time limit per baseline in seconds"),
)


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """``canonflow density``'s run, then the baselines with as many steps."""
    own = {option.name for option in OPTIONS}
    results = density.run({k: v for k, v in config.items() if k not in own}, run)
    if not config["baselines"]:
        return results
    name, seed = config["dataset"], config["seed"]
    preset = density.settings(config)
    data = load_dataset(name, seed, **preset["data"])
    models = {}
    for kind, shape in BASELINES[name].items():
        torch.manual_seed(seed)
        model = models[kind] = baseline(kind, data.train.shape[1] // 2, **shape)
        train_config = TrainConfig(
            steps=preset["steps"],
            lr=preset["lr"],
            seed=seed,
            grad_clip=preset["grad_clip"],
            eval_every=max(1, preset["steps"] // 20),
            patience=preset["patience"],
            time_limit=config["baseline_time_limit"],
            progress=run.progress,
            description=f"{name}/{kind}",
        )
        with canonflow.validation(False):
            result = fit_density(
                model, data.train, validation_data=data.validation, batch_size=preset["batch_size"], config=train_config
            )
        results["models"][kind] = density_entry(model, result, data, None, seed)
    if run.writes:
        density.plot(results, {"canonflow": load(run.out / "model.pt"), **models}, data, run.figures())
    return results


def report(results: dict[str, Any]) -> list[str]:
    """``canonflow density``'s lines and one per baseline."""
    baselines = [
        f"{kind}: test NLL(q) {entry['test_nll']:.4f} ± {entry['test_nll_stderr']:.4f} nats "
        f"({entry['steps_run']} steps, {entry['parameters']} parameters)"
        for kind, entry in results["models"].items()
        if kind != "canonflow"
    ]
    return [*density.report(results), *baselines]


COMMAND = dataclasses.replace(
    density.COMMAND,
    name="density+baselines",
    options=(*density.OPTIONS, *OPTIONS),
    run=run,
    report=report,
    distributed=False,  # the baselines train in one process; `canonflow density --nproc N` runs canonflow's model
)

if __name__ == "__main__":
    raise SystemExit(script_main(COMMAND, description=__doc__, default_out="experiments/results/density_{dataset}"))
