"""canonflow sample: compare samplers on a hard target: HMC or NUTS, NeuTra, flow-MCMC, learned leapfrog.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here; the
comparison itself is :func:`canonflow.sampling.comparison.compare_samplers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from canonflow.cli.catalog import SUBCOMMANDS, command
from canonflow.cli.options import complete
from canonflow.objects import named_or_imported
from canonflow.plots import plot_samplers
from canonflow.presets import load_preset
from canonflow.run_directory import Run
from canonflow.sampling import Target, get_target, importance_resample, moment_errors
from canonflow.sampling.comparison import FLOWS, compare_samplers
from canonflow.training import TrainConfig
from canonflow.validation import as_dtype

__all__ = ["COMMAND", "OPTIONS", "report", "run", "settings", "target_of"]

OPTIONS = SUBCOMMANDS["sample"].options
NOTES = (
    "ess_per_evaluation = min over coordinates of bulk ESS / (gradient + potential evaluations of U during "
    "sampling); a gradient counts as one evaluation (favours HMC). Warm-up and training costs are reported "
    "separately (warmup_*, training)."
)


def target_of(name: str) -> Target:
    """The target ``name``: a catalogue name, or the user's :class:`~canonflow.sampling.Target` as
    ``MODULE:NAME`` or ``FILE.py:NAME`` (e.g. made with ``Target.from_potential``)."""
    return named_or_imported(name, Target, "sample: target", get_target)


def settings(name: str, target: Target, quick: bool) -> dict[str, Any]:
    """Chain, sampler and flow sizes for the target ``name``: its preset (the generic one for the user's own
    target; ``quick``: a smoke run that keeps the tuned architecture and objective but not the budgets), with
    ``householder`` (``None``: the layer's default) and ``linear_leapfrog`` (default: ``dim > 2``) filled in."""
    return {"householder": None, "linear_leapfrog": target.dim > 2} | load_preset("sample", name).settings(quick)


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Train both flows and compare the samplers on ``config["target"]``; write models and figures to ``run``'s
    directory; return the results of the module docstring."""
    config = complete(OPTIONS, config)
    name, seed = config["target"], config["seed"]
    torch.manual_seed(seed)
    target, gen = target_of(name), torch.Generator().manual_seed(seed)
    cfg = settings(name, target, config["quick"])
    preset = {"steps": cfg["train_steps"], "lr": cfg["lr"], "grad_clip": 10.0}
    training = {
        flow: TrainConfig(**run.training_options(config, preset, f"{flow} flow", f"{flow}_training.pt", 10))
        for flow in FLOWS
    }
    dtype = as_dtype(config["dtype"], "sample")
    found = compare_samplers(
        target, cfg, training, gen, dtype=dtype, device=config["device"], precondition=config["precondition"],
        sampler=config["sampler"], metric=config["metric"],
    )  # fmt: skip
    summary = {"target": name, "dim": target.dim, "sampler": config["sampler"], "metric": config["metric"]}
    summary["settings"] = cfg
    summary["samplers"] = found.scores
    summary |= {"training": found.training, "exact_iid_reference": None, "notes": NOTES}
    if target.exact:
        exact = target.sample(cfg["chains"] * cfg["samples"], gen).reshape(cfg["samples"], cfg["chains"], target.dim)
        summary["exact_iid_reference"] = moment_errors(exact, target.mean, target.variance)
    if run.writes:
        extra = {"command": "sample", "target": name, "config": config}
        run.save_model(found.flows["canonical"], extra)
        run.save_model(found.flows["leapfrog"], extra, "leapfrog.pt")
        plot_samplers(target, found.draws, found.scores, run.figures())
    return summary


def evaluate_checkpoint(model: torch.nn.Module, trained: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Importance-sampling ``log Z`` estimate and ESS of a flow written by ``canonflow sample`` with the config
    ``trained``."""
    num = 2000 if config["quick"] else 20000
    generator = torch.Generator().manual_seed(trained["seed"])
    found = importance_resample(model.double(), target_of(trained["target"]).potential, num, 100, generator=generator)
    return {"importance_samples": num, "importance_ess": found.ess, "log_normalizer_estimate": found.log_normalizer}


def report(results: dict[str, Any]) -> list[str]:
    """One line per sampler: ESS per evaluation (and relative to HMC or NUTS), acceptance, moment check."""
    baseline = results.get("sampler", "hmc")  # runs written before --sampler used HMC
    return [
        f"{name:24s} ESS/eval {score['ess_per_evaluation']:.2e} "
        f"({score[f'ess_per_evaluation_vs_{baseline}']:.1f}x {baseline.upper()})"
        f"  acc {score['acceptance_rate']:.2f}  R-hat {score['rhat_max']:.3f}"
        + (f"  moments within 4 se: {score['within_4_se']}" if "within_4_se" in score else "")
        for name, score in results["samplers"].items()
    ]


COMMAND = command(__name__)
