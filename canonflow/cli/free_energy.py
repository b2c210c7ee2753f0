"""``canonflow free-energy``: variational free energy of ``e^{−βH}`` with a canonical flow and oscillator base.

Trains a :class:`~canonflow.density.PhaseSpaceFlow` by reverse KL (:func:`~canonflow.density.fit_variational`)
and estimates ``F`` from fresh model samples. Results: ``system``, ``n``, ``beta``, ``exact_free_energy``,
``neuralct_free_energy`` (the published neuralCT value, or ``null``), ``samples`` and ``models.canonflow``:
``parameters``, ``train_seconds``, ``steps_run``, ``gradient``, ``loss_curve``, the fields of
:class:`~canonflow.density.FreeEnergyEstimate` (``variational``, ``importance``, their ``*_stderr``, ``ess``,
``ess_fraction``, ...), ``variational_error``, ``importance_error``, the learned latent ``frequencies`` (with a
mixture base, ``base: "mixture"`` in the preset's model: one row of ``n`` per component, plus the
``mixture_weights``) and, for the harmonic chain, ``exact_frequencies`` and
``frequency_relative_error_mean``/``_max``. Writes ``model.pt``,
``training.pt`` and ``figures/{training_curves,latent_spectrum,samples}.png``. ``experiments/free_energy.py``
adds nflows baselines.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nflows.flows import Flow
from scipy import integrate

import canonflow
from canonflow.checkpoint import save_model
from canonflow.cli.run import (
    COMMON_OPTIONS,
    TRAINING_OPTIONS,
    Command,
    Option,
    complete,
    figures_dir,
    loss_curve,
    pyplot,
    run_device,
    torch_dtype,
    training_options,
    writes_outputs,
)
from canonflow.density import PhaseSpaceFlow, fit_variational, free_energy, latent_frequencies
from canonflow.distributed import DistributedContext
from canonflow.distributions import OscillatorMixture
from canonflow.systems import HamiltonianSystem, get_system
from canonflow.training import TrainConfig, TrainResult

__all__ = [
    "COMMAND",
    "OPTIONS",
    "SETTINGS",
    "estimate",
    "exact_free_energy",
    "gradient",
    "plot_training_curves",
    "run",
    "steps",
]

SETTINGS = {
    "harmonic_chain": dict(
        model=dict(blocks=0, linear="matrix_exp", linear_layers=3),
        gradient="path",
        batch=256,
        lr=1e-2,
        steps=12000,
        quick_steps=300,
        time_limit=600,
    ),
    "ring2d": dict(
        model=dict(blocks=0, linear="matrix_exp", base="mixture", components=16, radius=2.0),
        gradient="path",
        batch=512,
        lr=1e-2,
        steps=2000,
        quick_steps=200,
        time_limit=900,
    ),
    "double_well": dict(
        model=dict(blocks=6, hidden=96, linear="nak", householder=1, full_linear=True),
        gradient="total",
        batch=512,
        lr=3e-3,
        steps=2000,
        quick_steps=100,
        time_limit=600,
    ),
}
"""Per system: the canonical model (``PhaseSpaceFlow`` arguments; ``base="mixture"`` with ``components`` and
``radius`` puts an :class:`~canonflow.distributions.OscillatorMixture` under the flow, trained with the stratified
estimator; Ring2D uses 16 components started on the ring ``|q| = 2`` and one linear symplectic map), reverse-KL
gradient estimator (``fit_variational``'s ``gradient``: ``"path"``
where the model can represent the target exactly, so that the gradient noise vanishes as training converges;
``"total"`` where capacity, not noise, limits the fit and the path estimator's second pass through a deep flow is
not worth its cost), minibatch size, learning rate, steps (full and ``--quick``), time limit (seconds)."""
NEURALCT = {"harmonic_chain": -56.52, "ring2d": -3.89}
OPTIONS = (
    Option("system", "double_well", "Boltzmann distribution e^{-βH} of this system", choices=sorted(SETTINGS)),
    Option("beta", 1.0, "inverse temperature β", check=lambda value: None if value > 0 else "must be positive"),
    Option("samples", None, "model samples of the free-energy estimates", kind=int, default_text="200000, 10000 quick"),
    Option(
        "gradient",
        None,
        "reverse-KL gradient estimator: 'path' (path derivative, zero variance at the optimum) or 'total'",
        kind=str,
        choices=("path", "total"),
        default_text="the preset's",
    ),
    *TRAINING_OPTIONS,
    *COMMON_OPTIONS,
)


def double_well_free_energy(beta: float) -> float:
    """``F = −(1/β) ln ∫ e^{−β(q⁴/4 − q²/2)} dq · sqrt(2π/β)`` by quadrature."""
    value, _ = integrate.quad(lambda q: math.exp(-beta * (q**4 / 4 - q**2 / 2)), -np.inf, np.inf, epsrel=1e-12)
    return -(math.log(value) + 0.5 * math.log(2 * math.pi / beta)) / beta


def exact_free_energy(system: HamiltonianSystem, name: str, beta: float) -> float:
    """The exact free energy of ``system`` (registry ``name``) at ``beta``."""
    return double_well_free_energy(beta) if name == "double_well" else system.free_energy(beta)


def estimate(
    model: Flow, system: HamiltonianSystem, beta: float, samples: int, seed: int, exact: float, result: TrainResult
) -> dict[str, Any]:
    """The results entry of one trained model: size, training, free-energy estimates and their errors."""
    found = free_energy(model, system, beta, samples, torch.Generator().manual_seed(seed + 10))
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": result.seconds,
        "steps_run": result.steps,
        "loss_curve": loss_curve(result.losses),
        **found.as_dict(),
        "variational_error": found.variational - exact,
        "importance_error": found.importance - exact,
    }


def steps(config: dict[str, Any]) -> int:
    """The optimizer steps of a run: ``config["steps"]``, else the preset's (``--quick`` or full)."""
    settings = SETTINGS[config["system"]]
    return config["steps"] or (settings["quick_steps"] if config["quick"] else settings["steps"])


def gradient(config: dict[str, Any]) -> str:
    """The reverse-KL gradient estimator of a run: ``config["gradient"]``, else the preset's."""
    return config["gradient"] or SETTINGS[config["system"]]["gradient"]


def run(
    config: dict[str, Any],
    out: Path | None = None,
    *,
    progress: bool = True,
    resume: bool = False,
    distributed: DistributedContext | None = None,
) -> dict:
    """Train and evaluate the canonical flow on ``config["system"]``; write model and figures to ``out``;
    return the results of the module docstring."""
    config = complete(OPTIONS, config)
    name, beta, seed = config["system"], config["beta"], config["seed"]
    settings = SETTINGS[name]
    samples = config["samples"] or (10_000 if config["quick"] else 200_000)
    system = get_system(name)
    exact = exact_free_energy(system, name, beta)
    torch.manual_seed(seed)
    model = PhaseSpaceFlow(system.n, beta=beta, **settings["model"])
    model = model.to(dtype=torch_dtype(config), device=run_device(config, distributed))
    preset = {
        "steps": steps(config),
        "lr": settings["lr"],
        "time_limit": settings["time_limit"],
    }
    options = training_options(config, out, preset, description=f"{name}/canonflow", progress=progress, resume=resume)
    with canonflow.validation(False):
        result = fit_variational(
            model,
            system,
            beta,
            batch_size=settings["batch"],
            config=TrainConfig(**options),
            gradient=gradient(config),
            distributed=distributed,
        )
        model = model.cpu()
        entry = estimate(model, system, beta, samples, seed, exact, result)
    entry["gradient"] = gradient(config)
    if isinstance(model._distribution, OscillatorMixture):
        entry["frequencies"] = model._distribution.frequencies.detach().tolist()
        entry["mixture_weights"] = model._distribution.weights.detach().tolist()
    else:
        entry["frequencies"] = latent_frequencies(model).tolist()
    if name == "harmonic_chain":
        true = system.normal_mode_frequencies().sort().values
        relative = (latent_frequencies(model).double() - true) / true
        entry["exact_frequencies"] = true.tolist()
        entry["frequency_relative_error_mean"] = float(relative.abs().mean())
        entry["frequency_relative_error_max"] = float(relative.abs().max())
    results = {
        "system": name,
        "n": system.n,
        "beta": beta,
        "exact_free_energy": exact,
        "neuralct_free_energy": NEURALCT.get(name),
        "samples": samples,
        "models": {"canonflow": entry},
    }
    if writes_outputs(out, distributed):
        save_model(
            out / "model.pt", model, extra={"command": "free-energy", "system": name, "beta": beta, "config": config}
        )
        figures = figures_dir(out)
        plot_training_curves(results, figures / "training_curves.png")
        plot_model(model, system, results, figures)
    return results


def evaluate_checkpoint(model: torch.nn.Module, extra: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Free-energy estimates of a ``model.pt`` written by ``canonflow free-energy`` (or the older script)."""
    trained = complete(OPTIONS, extra.get("config", {"system": extra["system"], "beta": extra.get("beta", 1.0)}))
    name, beta = trained["system"], trained["beta"]
    system = get_system(name)
    exact = exact_free_energy(system, name, beta)
    samples = 10_000 if config["quick"] else trained["samples"] or 200_000
    with canonflow.validation(False):
        found = free_energy(model, system, beta, samples, torch.Generator().manual_seed(trained["seed"] + 10))
    return {
        "exact_free_energy": exact,
        **found.as_dict(),
        "variational_error": found.variational - exact,
        "importance_error": found.importance - exact,
    }


def plot_training_curves(results: dict[str, Any], path: Path) -> None:
    """``F_var`` (minibatch) minus the exact ``F`` along training, for every model in ``results["models"]``."""
    plt = pyplot()
    exact = results["exact_free_energy"]
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, entry in results["models"].items():
        curve = entry["loss_curve"]
        axis.plot(curve["steps"], np.asarray(curve["values"]) - exact, label=label)
    axis.set_yscale("log")
    axis.set(xlabel="step", ylabel="F_var (minibatch) − F  [nats]", title=f"{results['system']}: training curves")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_model(model: PhaseSpaceFlow, system: HamiltonianSystem, results: dict[str, Any], figures: Path) -> None:
    """``latent_spectrum.png`` (learned latent frequencies) and ``samples.png`` (model vs exact samples)."""
    plt = pyplot()
    name, beta = results["system"], results["beta"]
    entry = results["models"]["canonflow"]
    learned = np.asarray(entry["frequencies"])
    modes = np.arange(1, len(learned) + 1)
    figure, axis = plt.subplots(figsize=(6, 4))
    if learned.ndim == 2:  # a mixture base: every component's frequencies
        for mode in range(learned.shape[1]):
            axis.plot(modes, learned[:, mode], "o", label=f"mode {mode + 1} (learned ω)")
        axis.set(xlabel="mixture component", ylabel="ω", title=f"{name}: latent frequencies of the mixture")
    else:
        axis.plot(modes, learned, "o", label="canonflow (learned ω_k)")
        if "exact_frequencies" in entry:
            axis.plot(modes, entry["exact_frequencies"], "-", label="exact")
        axis.set(xlabel="mode k (sorted)", ylabel="ω_k", title=f"{name}: latent frequency spectrum")
    axis.legend()
    figure.tight_layout()
    figure.savefig(figures / "latent_spectrum.png", dpi=120)
    plt.close(figure)

    with torch.no_grad():
        drawn = model.sample(5000).double().numpy()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    if name == "double_well":
        grid = np.linspace(-2.5, 2.5, 400)
        density = np.exp(-beta * (grid**4 / 4 - grid**2 / 2))
        density /= np.trapezoid(density, grid)
        axes[0].hist(drawn[:, 0], bins=80, density=True, alpha=0.6, label="canonflow")
        axes[0].plot(grid, density, "k-", label="exact")
        axes[0].set_xlabel("q")
        axes[0].legend()
        axes[1].hist2d(drawn[:, 0], drawn[:, 1], bins=60)
        axes[1].set(xlabel="q", ylabel="p", title="canonflow samples")
    else:
        target = system.sample_boltzmann(5000, beta).numpy()
        i, j = (0, 1) if name == "ring2d" else (0, system.n - 1)
        for axis, data, title in ((axes[0], target, "exact Boltzmann"), (axes[1], drawn, "canonflow")):
            axis.scatter(data[:, i], data[:, j], s=1, alpha=0.3)
            axis.set_title(f"{title}: q_{i + 1} vs q_{j + 1}")
            axis.set_aspect("equal")
    figure.tight_layout()
    figure.savefig(figures / "samples.png", dpi=120)
    plt.close(figure)


def report(results: dict[str, Any]) -> list[str]:
    """The lines ``canonflow free-energy`` prints."""
    entry = results["models"]["canonflow"]
    return [
        f"{results['system']} (n = {results['n']}, β = {results['beta']}): {entry['steps_run']} steps in "
        f"{entry['train_seconds']:.0f} s, {entry['parameters']} parameters",
        f"F_var {entry['variational']:.5f} ± {entry['variational_stderr']:.5f}; importance-sampled F "
        f"{entry['importance']:.5f} ± {entry['importance_stderr']:.5f} (ESS {100 * entry['ess_fraction']:.0f}%)",
        f"exact F {results['exact_free_energy']:.5f}",
    ]


COMMAND = Command(
    name="free-energy",
    help="variational free energy of a Boltzmann distribution",
    description=__doc__,
    options=OPTIONS,
    run=run,
    report=report,
    distributed=True,
    evaluate_checkpoint=evaluate_checkpoint,
)
