"""canonflow free-energy: the free energy of a Boltzmann distribution e^(-βH) with a canonical flow.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

import canonflow
from canonflow.cli.catalog import SUBCOMMANDS, command
from canonflow.cli.options import complete
from canonflow.density.reference_runs import free_energy_estimates, run_free_energy
from canonflow.estimators import exact_free_energy
from canonflow.objects import named_or_imported
from canonflow.plots import plot_free_energy, plot_training_curves
from canonflow.presets import load_preset
from canonflow.run_directory import Run
from canonflow.systems import HamiltonianSystem, get_system
from canonflow.training import TrainConfig
from canonflow.validation import as_dtype

__all__ = ["COMMAND", "OPTIONS", "report", "run", "settings", "system_of"]

OPTIONS = SUBCOMMANDS["free-energy"].options


def settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The preset of ``config["system"]`` (the generic one for the user's ``MODULE:NAME``; ``--quick`` applied)
    with ``steps``, ``samples`` and ``gradient`` from ``config`` where given."""
    preset = load_preset("free-energy", config["system"]).settings(config["quick"])
    return preset | {key: config[key] for key in ("steps", "samples", "gradient") if config.get(key)}


def system_of(name: str) -> HamiltonianSystem:
    """The catalogue system ``name``, or the user's own system when ``name`` is ``MODULE:NAME``."""
    return named_or_imported(name, HamiltonianSystem, "free-energy: system", get_system)


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Train and evaluate the canonical flow on ``config["system"]``
    (:func:`~canonflow.density.reference_runs.run_free_energy`); write model and figures to ``run``'s directory;
    return the results of the module docstring."""
    config = complete(OPTIONS, config)
    name, beta, seed = config["system"], config["beta"], config["seed"]
    preset, system = settings(config), system_of(name)
    training = {key: preset[key] for key in ("steps", "lr", "time_limit", "grad_clip") if key in preset}
    options = run.training_options(config, training, description=f"{name.rpartition(':')[2]}/canonflow")
    model, _, entry = run_free_energy(
        preset, system, beta, seed, TrainConfig(**options), dtype=as_dtype(config["dtype"], "free-energy"),
        device=run.device(config), distributed=run.distributed,
    )  # fmt: skip
    exact_f = exact_free_energy(system, beta)
    results = {
        "system": name, "n": system.n, "beta": beta, "exact_free_energy": exact_f,
        "neuralct_free_energy": preset.get("neuralct_free_energy"), "samples": preset["samples"],
        "models": {"canonflow": entry},
    }  # fmt: skip
    if run.writes:
        run.save_model(model, {"command": "free-energy", "system": name, "beta": beta, "config": config})
        ylabel = "F_var (minibatch) − F  [nats]" if exact_f is not None else "F_var (minibatch) [nats]"
        curves = run.figures() / "training_curves.png"
        plot_training_curves(results, curves, ylabel=ylabel, offset=exact_f or 0.0, log=exact_f is not None)
        with torch.no_grad():
            drawn = model.sample(5000).double().numpy()
        exact_draws = getattr(system, "sample_boltzmann", None)
        target = None if exact_draws is None else exact_draws(5000, beta).numpy()
        plot_free_energy(entry, drawn, target, name, beta, run.figures())
    return results


def evaluate_checkpoint(model: torch.nn.Module, trained: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Free-energy estimates of a ``model.pt`` written by ``canonflow free-energy`` (or the older script) with
    the config ``trained``."""
    full, quick = (load_preset("free-energy", trained["system"]).settings(q)["samples"] for q in (False, True))
    samples = quick if config["quick"] else trained["samples"] or full
    with canonflow.validation(False):
        return free_energy_estimates(model, system_of(trained["system"]), trained["beta"], samples, trained["seed"])


def report(results: dict[str, Any]) -> list[str]:
    """The lines ``canonflow free-energy`` prints."""
    entry = results["models"]["canonflow"]
    return [
        f"{results['system']} (n = {results['n']}, β = {results['beta']}): {entry['steps_run']} steps in "
        f"{entry['train_seconds']:.0f} s, {entry['parameters']} parameters",
        f"F_var {entry['variational']:.5f} ± {entry['variational_stderr']:.5f}; importance-sampled F "
        f"{entry['importance']:.5f} ± {entry['importance_stderr']:.5f} (ESS {100 * entry['ess_fraction']:.0f}%)",
        "exact F unknown" if results["exact_free_energy"] is None else f"exact F {results['exact_free_energy']:.5f}",
    ]


COMMAND = command(__name__)
