"""canonflow demo: learn action-angle coordinates of planar Kepler orbits in a few minutes, or fit a banana density.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from canonflow.cli import action_angle
from canonflow.cli.catalog import SUBCOMMANDS, command
from canonflow.cli.options import complete
from canonflow.data import BANANA_NLL, banana
from canonflow.density import fit_density
from canonflow.flow import CanonicalFlow
from canonflow.plots import plot_scatter
from canonflow.presets import load_preset
from canonflow.run_directory import Run
from canonflow.testing import round_trip_error, symplectic_defect
from canonflow.training import TrainConfig
from canonflow.validation import as_dtype

__all__ = ["COMMAND", "OPTIONS", "checks", "report", "run"]

OPTIONS = SUBCOMMANDS["demo"].options


def _data(seed: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    preset = load_preset("demo", "banana").settings()
    generator = torch.Generator().manual_seed(seed)
    return banana(preset["num_train"], generator).to(dtype), banana(preset["num_test"], generator).to(dtype)


def checks(flow: CanonicalFlow, test: torch.Tensor) -> dict[str, float]:
    """Held-out NLL of ``flow`` on ``test`` against the exact one, inverse round-trip error and symplectic
    defect."""
    with torch.no_grad():
        nll = -flow.log_prob(test).mean().item()
    return {
        "test_nll": nll,
        "exact_nll": BANANA_NLL,
        "round_trip_error": round_trip_error(flow.transform, test),
        "symplectic_defect": symplectic_defect(flow.transform, test[:64]).max().item(),
    }


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Run the demo chosen by ``config["example"]`` (see ``OPTIONS``); write the model and figures to ``run``'s
    directory; return the results of the module docstring."""
    config = complete(OPTIONS, config)
    preset = load_preset("demo", config["example"]).settings(config["quick"])
    if config["example"] == "kepler":
        shared = {option.name for option in action_angle.OPTIONS} - {"system"}
        kepler = {key: value for key, value in config.items() if key in shared}
        return action_angle.run(kepler | {"system": preset["action_angle"]}, run)
    dtype, device = as_dtype(config["dtype"], "demo"), run.device(config)
    data, test = _data(config["seed"], dtype)
    torch.manual_seed(config["seed"])
    flow = CanonicalFlow.build(1, hidden=config["hidden"], **preset["model"]).to(dtype=dtype, device=device)
    options = run.training_options(config, {"steps": preset["steps"], "lr": config["lr"]}, description="demo")
    result = fit_density(
        flow, data.to(device), validation_fraction=0, batch_size=config["batch_size"], config=TrainConfig(**options),
        distributed=run.distributed,
    )  # fmt: skip
    flow = flow.cpu()
    parameters = sum(p.numel() for p in flow.parameters())
    results = {"steps": result.steps, "train_seconds": result.seconds, "parameters": parameters, **checks(flow, test)}
    if run.writes:
        run.save_model(flow, {"command": "demo", "config": config})
        with torch.no_grad():
            drawn = flow.sample(len(test)).numpy()
        plot_scatter({"exact samples": test.numpy(), "trained flow": drawn}, run.figures() / "samples.png")
    return results


def evaluate_checkpoint(model: torch.nn.Module, trained: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The held-out checks of a demo ``model.pt`` (trained with the config ``trained``) on the test set of the
    seed it was trained with."""
    return checks(model, _data(trained["seed"], next(model.parameters()).dtype)[1])


def report(results: dict[str, Any]) -> list[str]:
    """The lines ``canonflow demo`` prints."""
    if "system" in results:
        return action_angle.report(results)
    return [
        f"banana density: trained {results['steps']} steps in {results['train_seconds']:.1f} s",
        f"held-out NLL {results['test_nll']:.4f} nats (exact density: {results['exact_nll']:.4f})",
        f"inverse round trip max error {results['round_trip_error']:.2e}; "
        f"symplectic defect max|JᵀΩJ - Ω| {results['symplectic_defect']:.2e}",
    ]


COMMAND = command(__name__)
