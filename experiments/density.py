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
from pathlib import Path
from typing import Any

import torch
from nflows.flows import Flow
from nflows.flows.autoregressive import MaskedAutoregressiveFlow
from nflows.flows.realnvp import SimpleRealNVP

import canonflow
from canonflow import load
from canonflow.cli import density
from canonflow.cli.run import Option, figures_dir, script_main
from canonflow.density import fit_density
from canonflow.distributions import PhaseSpaceNormal
from canonflow.training import TrainConfig

BASELINES = {
    "digits": {"realnvp": dict(hidden=96, layers=8, blocks=1), "maf": dict(hidden=104, layers=5, blocks=1)},
    "ring2d": {"realnvp": dict(hidden=20, layers=6, blocks=1), "maf": dict(hidden=20, layers=5, blocks=1)},
}
OPTIONS = (
    Option("baselines", True, "also fit the RealNVP and MAF baselines"),
    Option("baseline_time_limit", 300.0, "training time limit per baseline in seconds"),
)


def baseline(kind: str, dim: int, hidden: int, layers: int, blocks: int) -> Flow:
    """An nflows RealNVP / MAF flow on ℝ^dim with a N(0, I) base."""
    if kind == "realnvp":
        transform = SimpleRealNVP(dim, hidden, layers, blocks)._transform
    else:
        transform = MaskedAutoregressiveFlow(dim, hidden, layers, blocks)._transform
    return Flow(transform, PhaseSpaceNormal(dim // 2)).double()


def run(config: dict[str, Any], out: Path | None = None, *, progress: bool = True, resume: bool = False) -> dict:
    """``canonflow density``'s run, then the baselines with as many steps."""
    own = {option.name for option in OPTIONS}
    results = density.run({k: v for k, v in config.items() if k not in own}, out, progress=progress, resume=resume)
    if not config["baselines"]:
        return results
    name, seed = config["dataset"], config["seed"]
    data = density.load_dataset(name, seed, config["quick"])
    settings = density.SETTINGS[name]
    steps = density.steps(config)
    models = {}
    for kind, shape in BASELINES[name].items():
        torch.manual_seed(seed)
        model = models[kind] = baseline(kind, data.train.shape[1], **shape)
        train_config = TrainConfig(
            steps=steps,
            lr=settings["lr"],
            seed=seed,
            grad_clip=10.0,
            eval_every=max(1, steps // 20),
            patience=6,
            time_limit=config["baseline_time_limit"],
            progress=progress,
            description=f"{name}/{kind}",
        )
        with canonflow.validation(False):
            fit = fit_density(
                model,
                data.train,
                validation_data=data.validation,
                batch_size=settings["batch"],
                config=train_config,
            )
        results["models"][kind] = {**density.fit_entry(model, fit), **density.test_entry(model, data, name, None, seed)}
    if out is not None:
        figures = figures_dir(out)
        density.plot_training_curves(results, figures / "training_curves.png")
        density.plot_samples({"canonflow": load(out / "model.pt"), **models}, data, name, figures / "samples.png")
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
