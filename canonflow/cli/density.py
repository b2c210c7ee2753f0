"""canonflow density: maximum-likelihood density estimation with a canonical flow on momentum-augmented data.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from nflows.flows import Flow

from canonflow.cli.catalog import SUBCOMMANDS, command
from canonflow.cli.options import complete
from canonflow.data import Dataset, load_dataset
from canonflow.density.reference_runs import held_out_nll_entry, run_density
from canonflow.plots import plot_density_samples, plot_training_curves
from canonflow.presets import load_preset
from canonflow.run_directory import Run
from canonflow.training import TrainConfig
from canonflow.validation import as_dtype

__all__ = ["COMMAND", "OPTIONS", "plot", "report", "run", "settings"]

OPTIONS = SUBCOMMANDS["density"].options


def settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The preset of ``config["dataset"]`` (``--quick`` applied) with ``steps`` and ``momenta`` from ``config``
    where given."""
    preset = load_preset("density", config["dataset"]).settings(config["quick"])
    return preset | {key: config[key] for key in ("steps", "momenta") if config.get(key)}


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Fit the canonical flow to ``config["dataset"]`` (:func:`~canonflow.density.reference_runs.run_density`;
    bits/dim for digits); write model and figures to ``run``'s directory; return the results of the module
    docstring."""
    config = complete(OPTIONS, config)
    name, seed = config["dataset"], config["seed"]
    preset = settings(config)
    data = load_dataset(name, seed, **preset["data"])
    training = {key: preset[key] for key in ("steps", "lr", "grad_clip", "patience", "time_limit")}
    options = run.training_options(config, training, description=f"{name}/canonflow", evaluations=20)
    model, _, entry = run_density(
        preset, data, seed, TrainConfig(**options), bits_per_dim=name == "digits",
        dtype=as_dtype(config["dtype"], "density"), device=run.device(config), distributed=run.distributed,
    )  # fmt: skip
    results = {
        "dataset": name, "dim": data.train.shape[1], "train": len(data.train), "validation": len(data.validation),
        "test": len(data.test), "momenta": preset["momenta"], "exact_test_nll": data.exact_test_nll,
        "models": {"canonflow": entry},
    }  # fmt: skip
    if run.writes:
        run.save_model(model, {"command": "density", "dataset": name, "config": config})
        plot(results, {"canonflow": model}, data, run.figures())
    return results


def evaluate_checkpoint(model: torch.nn.Module, trained: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Test NLLs of a ``model.pt`` written by ``canonflow density`` (or the older script) with the config
    ``trained``."""
    full, quick = (load_preset("density", trained["dataset"]).settings(q)["momenta"] for q in (False, True))
    momenta = quick if config["quick"] else trained["momenta"] or full
    data = load_dataset(trained["dataset"], trained["seed"], **settings(trained)["data"])
    entry = held_out_nll_entry(model, data, momenta, trained["seed"], bits_per_dim=trained["dataset"] == "digits")
    return {"exact_test_nll": data.exact_test_nll, **entry}


def plot(results: dict[str, Any], models: dict[str, Flow], data: Dataset, figures: Path) -> None:
    """``training_curves.png`` of every entry of ``results["models"]`` and ``samples.png`` of ``models``."""
    plot_training_curves(results, figures / "training_curves.png", ylabel="NLL(q) [nats]")
    dim = data.test.shape[1]
    with torch.no_grad():
        drawn = {label: model.sample(2000)[:, :dim].double().numpy() for label, model in models.items()}
    plot_density_samples(drawn, data.test.numpy(), results["dataset"], figures / "samples.png")


def report(results: dict[str, Any]) -> list[str]:
    """The lines ``canonflow density`` prints."""
    entry = results["models"]["canonflow"]
    lines = [
        f"{results['dataset']} (dim {results['dim']}, {results['train']} training points): {entry['steps_run']} "
        f"steps in {entry['train_seconds']:.0f} s, {entry['parameters']} parameters",
        f"test NLL(q) {entry['test_nll']:.4f} ± {entry['test_nll_stderr']:.4f} nats (upper bound), "
        f"{entry['test_nll_importance_weighted']:.4f} (importance-weighted, K = {results['momenta']})",
    ]
    if results["exact_test_nll"] is not None:
        lines.append(f"exact test NLL(q) {results['exact_test_nll']:.4f}")
    if "test_bits_per_dim" in entry:
        lines.append(f"test bits/dim {entry['test_bits_per_dim_importance_weighted']:.3f} (importance-weighted)")
    return lines


COMMAND = command(__name__)
