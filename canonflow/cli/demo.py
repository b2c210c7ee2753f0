"""``canonflow demo``: the planar Kepler action-angle experiment in a few minutes, or a banana density.

``--example kepler`` (default) is ``canonflow action-angle --system kepler2d_demo``: one canonical flow for a
family of planar Kepler orbits (E ∈ [−0.8, −0.3], e ∈ [0.1, 0.7]), trained for at most 170 s, evaluated on
held-out orbits; its results and files are those of :mod:`canonflow.cli.action_angle`.

``--example banana`` fits a canonical flow to a banana density whose exact NLL is known, then checks the flow.
The data are exact samples of ``N(0, I)`` pushed through the canonical shear ``(q, p) -> (q, p + q² − 1)``,
so the exact held-out NLL is ``log 2π + 1``. Results: ``steps``, ``train_seconds``, ``parameters``,
``test_nll``, ``exact_nll``, ``round_trip_error`` (max ``|T⁻¹(T(x)) − x|``) and ``symplectic_defect``
(max ``|JᵀΩJ − Ω|``). Writes ``model.pt`` (a ``PhaseSpaceFlow``), ``training.pt`` and ``figures/samples.png``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from canonflow.checkpoint import save_model
from canonflow.cli import action_angle
from canonflow.cli.run import (
    COMMON_OPTIONS,
    TRAINING_OPTIONS,
    Command,
    Option,
    complete,
    figures_dir,
    pyplot,
    run_device,
    torch_dtype,
    training_options,
    writes_outputs,
)
from canonflow.density import PhaseSpaceFlow
from canonflow.distributed import DistributedContext, check_global_batch, shard
from canonflow.testing import symplectic_defect
from canonflow.training import TrainConfig, train

__all__ = ["COMMAND", "OPTIONS", "banana", "run"]

KEPLER_SYSTEM = "kepler2d_demo"
OPTIONS = (
    Option(
        "example",
        "kepler",
        "which demo: Kepler action-angle coordinates or a banana density",
        choices=("kepler", "banana"),
    ),
    Option("lr", 1e-2, "Adam learning rate (banana)"),
    Option("batch_size", 256, "minibatch size (banana)"),
    Option("hidden", 64, "hidden width of the gradient fields (banana)"),
    *TRAINING_OPTIONS,
    *COMMON_OPTIONS,
)
NUM_TRAIN, NUM_TEST = 8192, 4096


def banana(num: int, generator: torch.Generator) -> torch.Tensor:
    """Exact samples ``(num, 2)`` of ``N(0, I)`` pushed through the canonical shear ``(q, p) -> (q, p + q² − 1)``."""
    q, p = torch.randn(2, num, generator=generator, dtype=torch.float64)
    return torch.stack([q, p + q**2 - 1.0], dim=1)


def _data(seed: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return banana(NUM_TRAIN, generator).to(dtype), banana(NUM_TEST, generator).to(dtype)


def _checks(flow: PhaseSpaceFlow, test: torch.Tensor) -> dict[str, float]:
    transform = flow._transform
    with torch.no_grad():
        nll = -flow.log_prob(test).mean().item()
        latent, _ = transform(test)
        round_trip = (transform.inverse(latent)[0] - test).abs().max().item()
    return {
        "test_nll": nll,
        "exact_nll": math.log(2 * math.pi) + 1.0,  # E[-log N(z; 0, I)] in two dimensions
        "round_trip_error": round_trip,
        "symplectic_defect": symplectic_defect(transform, test[:64]).max().item(),
    }


def run(
    config: dict[str, Any],
    out: Path | None = None,
    *,
    progress: bool = True,
    resume: bool = False,
    distributed: DistributedContext | None = None,
) -> dict:
    """Run the demo chosen by ``config["example"]`` (see ``OPTIONS``); write the model and figures to ``out``;
    return the results of the module docstring."""
    config = complete(OPTIONS, config)
    if config["example"] == "kepler":
        shared = {option.name for option in action_angle.OPTIONS} - {"system"}
        kepler = {key: value for key, value in config.items() if key in shared} | {"system": KEPLER_SYSTEM}
        return action_angle.run(kepler, out, progress=progress, resume=resume, distributed=distributed)
    dtype, device = torch_dtype(config), run_device(config, distributed)
    data, test = _data(config["seed"], dtype)
    data = data.to(device)
    torch.manual_seed(config["seed"])
    flow = PhaseSpaceFlow(
        1, blocks=2, hidden=config["hidden"], linear="none", zero_center=True, activation="softplus", base="normal"
    ).to(dtype=dtype, device=device)
    batch = config["batch_size"]
    check_global_batch(batch, distributed, "demo")

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, len(data), (batch,), generator=generator)
        return -flow.log_prob(shard(data[index.to(device)])).mean()

    preset = {"steps": 150 if config["quick"] else 1500, "lr": config["lr"]}
    options = training_options(config, out, preset, description="demo", progress=progress, resume=resume)
    result = train(flow, loss_fn, TrainConfig(**options), distributed=distributed)
    flow = flow.cpu()
    results = {
        "steps": result.steps,
        "train_seconds": result.seconds,
        "parameters": sum(p.numel() for p in flow.parameters()),
        **_checks(flow, test),
    }
    if writes_outputs(out, distributed):
        save_model(out / "model.pt", flow, extra={"command": "demo", "config": config})
        _plot(flow, test, figures_dir(out) / "samples.png")
    return results


def evaluate_checkpoint(model: torch.nn.Module, extra: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The held-out checks of a demo ``model.pt`` on the test set of the seed it was trained with."""
    trained = complete(OPTIONS, extra.get("config", {}))
    dtype = next(model.parameters()).dtype
    return _checks(model, _data(trained["seed"], dtype)[1])


def _plot(flow: PhaseSpaceFlow, test: torch.Tensor, path: Path) -> None:
    plt = pyplot()
    with torch.no_grad():
        drawn = flow.sample(len(test)).numpy()
    figure, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for axis, points, title in ((axes[0], test.numpy(), "exact samples"), (axes[1], drawn, "trained flow")):
        axis.scatter(points[:, 0], points[:, 1], s=1, alpha=0.3)
        axis.set(title=title, xlabel="q", ylabel="p")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


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


COMMAND = Command(
    name="demo",
    help="learn action-angle coordinates of Kepler orbits in a few minutes (or --example banana)",
    description=__doc__,
    options=OPTIONS,
    run=run,
    report=report,
    distributed=True,
    evaluate_checkpoint=evaluate_checkpoint,
)
