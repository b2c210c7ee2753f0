"""``canonflow learn-hamiltonian``: learn a Hamiltonian from noisy trajectories and compare it with the truth.

Protocols (presets in ``canonflow/presets/learn-hamiltonian.toml``; all with canonflow's public API):

* ``spring`` and ``pendulum`` follow Greydanus et al. (2019), HNN: 50 trajectories (25 train, 25 validation),
  noise σ = 0.1 on q and p, derivative matching against the exact derivatives at the clean states (their
  protocol), an MLP of 200 tanh units. Their systems (``hamiltonian_fn`` of their code) are ``H_G = q² + p²``
  and ``H_G = 3(1 − cos q) + p²``, which are ``2·H`` of canonflow's ``HarmonicOscillator(ω=1)`` and
  ``Pendulum(g=1.5, l=1)`` (``H = p²/2 + 1.5(1 − cos q)``) with time ``t = 2 t_G``: the same (q, p) data, so
  their t_G ∈ [0, 3] is t ∈ [0, 6] here and the energy MSE is reported in their units (``H_G = 2H``, MSE × 4).
  Initial states as in their code: a direction ``y/‖y‖`` with ``y`` uniform on [−1, 1]², times a radius
  ~ U[0.1, 1] (spring, 30 samples) or U[1.3, 2.3] (pendulum, 45 samples). Every pendulum orbit of radius
  ≤ 2.3 librates: ``H_G ≤ 5.83`` on that circle, below the separatrix ``H_G = 6``. Energy MSE: 15 rollouts from
  x₀ with |x₀ᵢ| ~ U[0.2, 1] and random signs (spring, their analysis script) or from the training law
  (pendulum), over t_G ∈ [0, 20] with 100 samples; the mean over rollouts and samples of
  (H_G(x̂(t)) − H_G(x(t)))². ``energy_mse_librations`` is the same mean over the rollouts below the separatrix.
* ``double_well``, ``coupled_oscillator`` (α = 0.5) and ``henon_heiles`` follow Choudhary et al. (2024):
  noise σ = 0.01, Δt = 0.01, windows of 7 steps, trajectory matching through the implicit midpoint rule with
  adjoint gradients; initial states uniform on [−2, 2]² (1 DoF) or ``HenonHeiles.sample_initial`` (energy
  below 0.125); error ``mean |H_θ − c − H|`` on the grid / uniform / Gaussian test sets of
  ``canonflow.hamiltonian_learning.hamiltonian_test_sets``.

Results: ``system``, ``system_repr``, ``protocol``, ``mode``, ``adjoint``, ``derivatives``, ``data``,
``model``, ``training``, ``hamiltonian_error`` (per test set), ``rollout`` (``energy_mse`` and per rollout,
``energy_mse_librations``, ``state_mse``, ...), ``anchors``, ``total_seconds``, ``total_cpu_seconds``. Writes
``model.pt``, ``training.pt`` and ``figures/{hamiltonian_contours,rollouts,energy_error}.png``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch

from canonflow.cli.options import COMMON_OPTIONS, TRAINING_OPTIONS, Option, complete, non_negative
from canonflow.cli.run import Command
from canonflow.cli.run_directory import Run
from canonflow.data import TrajectoryData, trajectories
from canonflow.hamiltonian_learning import (
    MODES,
    HamiltonianNet,
    evaluate_hamiltonian,
    fit_hamiltonian,
    hamiltonian_test_sets,
    rollout,
)
from canonflow.plots import plot_hamiltonian
from canonflow.presets import build_system, initial_states, load_preset, presets
from canonflow.training import TrainConfig

__all__ = ["COMMAND", "OPTIONS", "errors", "report", "run"]

OPTIONS = (
    Option("system", "spring", "system and protocol", choices=sorted(presets("learn-hamiltonian"))),
    Option("mode", None, "loss", kind=str, choices=MODES, default_text="the protocol's"),
    Option("adjoint", None, "implicit midpoint: adjoint gradients", kind=bool, default_text="on for implicit_midpoint"),
    Option("lr", None, "Adam learning rate", kind=float, default_text="the protocol's"),
    Option(
        "polynomial",
        None,
        "degree of HamiltonianNet's polynomial part (0: none)",
        kind=int,
        default_text="the protocol's",
        check=non_negative,
    ),
    Option(
        "base_steps",
        None,
        "steps fitting the polynomial part alone first (0: none)",
        kind=int,
        default_text="the protocol's (0 without a polynomial part)",
        check=non_negative,
    ),
    *TRAINING_OPTIONS,
    *COMMON_OPTIONS,
)


def _split(data: TrajectoryData, num_train: int, num_validation: int) -> tuple[TrajectoryData, TrajectoryData]:
    sizes = [num_train, num_validation]
    parts = zip(data.states.split(sizes), data.clean_states.split(sizes), data.derivatives.split(sizes), strict=True)
    train, validation = (type(data)(data.times, s, c, d, data.noise_std, data.system_name) for s, c, d in parts)
    return train, validation


def errors(model: torch.nn.Module, preset: Mapping[str, Any], seed: int) -> tuple[dict[str, Any], Any]:
    """Hamiltonian errors on the test sets and energy/state errors along the 15 rollouts of the protocol
    ``preset`` (a ``learn-hamiltonian`` preset's settings); returns the results and the ``Rollout``."""
    system = build_system(preset["system"])
    found = evaluate_hamiltonian(model, system, seed=seed, num=preset["test_points"])
    law = preset.get("rollout_initial", preset["initial"])
    start_states = initial_states(law, system, 15, torch.Generator().manual_seed(seed + 2))
    t_end, num_points = preset["rollout"]["t_end"], preset["rollout"]["num_points"]
    rolled = rollout(model, system, start_states, t_end, num_points, integrator="rk4", substeps=20)
    scale = preset["energy_scale"]
    per_rollout = scale**2 * rolled.energy_error.pow(2).mean(1)
    separatrix = getattr(system, "separatrix_energy", None)
    librating = None if separatrix is None else system(start_states) < separatrix
    summary = {
        "energy_mse": scale**2 * rolled.energy_mse,
        "energy_mse_per_rollout": per_rollout.tolist(),
        "energy_mse_librations": None if librating is None else float(per_rollout[librating].mean()),
        "num_librations": None if librating is None else int(librating.sum()),
        "energy_units": preset["energy_units"],
        "state_mse": rolled.state_mse,
        "num_rollouts": start_states.shape[0],
        "t_end": t_end,
        "num_points": num_points,
        "integrator": "rk4, 20 substeps per sample",
    }
    return {"hamiltonian_error": found, "rollout": summary}, rolled


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Fit a ``HamiltonianNet`` per the protocol ``config["system"]``; write model and figures to ``run``'s
    directory; return the results of the module docstring."""
    config = complete(OPTIONS, config)
    name, seed = config["system"], config["seed"]
    preset = load_preset("learn-hamiltonian", name).settings(config["quick"])
    preset |= {key: config[key] for key in ("mode", "lr", "polynomial", "base_steps") if config[key] is not None}
    mode, polynomial = preset["mode"], preset["polynomial"]
    adjoint = mode == "implicit_midpoint" and config["adjoint"] is not False
    base_steps = min(preset["base_steps"], preset.get("max_base_steps", preset["base_steps"])) if polynomial else 0
    num_train, num_validation = preset["num_train"], preset["num_validation"]
    system = build_system(preset["system"])
    started, cpu_started = time.perf_counter(), time.process_time()
    num = num_train + num_validation
    data = trajectories(
        system,
        num,
        (preset["t_end"], preset["num_points"]),
        initial=initial_states(preset["initial"], system, num, torch.Generator().manual_seed(seed)),
        noise_std=preset["noise_std"],
        seed=seed + 1,
    )
    train_data, validation_data = _split(data, num_train, num_validation)
    torch.manual_seed(seed)
    model = HamiltonianNet(
        system.n,
        hidden=preset["hidden"],
        depth=preset["depth"],
        activation=preset["activation"],
        separable=mode == "leapfrog",
        polynomial=polynomial,
        dtype=config["dtype"],
    ).to(config["device"])
    training = {"steps": preset["steps"], "lr": preset["lr"]}
    options = run.training_options(config, training, description=f"{name}/{mode}", evaluations=20)
    batch_size = preset["batch_size"] or None
    result = fit_hamiltonian(
        model,
        train_data,
        mode,
        adjoint=adjoint,
        derivatives=preset["derivatives"],
        window=preset["window"],
        batch_size=batch_size,
        config=TrainConfig(**options),
        validation_data=validation_data,
        base_steps=base_steps,
    )
    train_seconds = time.perf_counter() - started
    model = model.cpu()
    found, rolled = errors(model, preset, seed)
    results = {
        "system": name,
        "system_repr": repr(system),
        "protocol": preset["protocol"],
        "mode": mode,
        "adjoint": adjoint,
        "derivatives": preset["derivatives"] if mode == "derivative" else None,
        "data": {
            "num_train": num_train,
            "num_validation": num_validation,
            "t_end": preset["t_end"],
            "num_points": preset["num_points"],
            "dt": preset["t_end"] / (preset["num_points"] - 1),
            "noise_std": preset["noise_std"],
            "initial": preset["initial"],
            "window": preset["window"] if mode != "derivative" else None,
        },
        "model": model.config(),
        "training": {
            "steps": result.steps,
            "base_steps": base_steps,
            "lr": preset["lr"],
            "batch_size": batch_size,
            "final_loss": result.losses[-1] if result.losses else None,
            "best_validation": result.best_validation,
            "best_step": result.best_step,
            "seconds": train_seconds,
        },
        **found,
        "anchors": preset["anchors"],
        "total_seconds": time.perf_counter() - started,
        "total_cpu_seconds": time.process_time() - cpu_started,
    }
    if run.writes:
        run.save_model(
            model, {"command": "learn-hamiltonian", "system": name, "mode": mode, "adjoint": adjoint, "config": config}
        )
        grid = hamiltonian_test_sets(system, grid_size=101, num=1)["grid"]
        with torch.no_grad():
            true, learned = system(grid), model(grid.to(next(model.parameters()).dtype)).to(torch.float64)
        plot_hamiltonian(grid, true, learned, rolled, preset["energy_scale"], system.n, run.figures())
    return results


def evaluate_checkpoint(model: torch.nn.Module, trained: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Hamiltonian and rollout errors of a ``model.pt`` written by ``canonflow learn-hamiltonian`` with the
    config ``trained``."""
    return errors(
        model, load_preset("learn-hamiltonian", trained["system"]).settings(config["quick"]), trained["seed"]
    )[0]


def report(results: dict[str, Any]) -> list[str]:
    """The line ``canonflow learn-hamiltonian`` prints."""
    summary = ", ".join(f"{k} {v:.4g}" for k, v in results["hamiltonian_error"].items())
    energy_mse = results["rollout"]["energy_mse"]
    lines = [
        f"{results['system']} {results['mode']}: H error {summary}; energy MSE {energy_mse:.3e}; "
        f"{results['total_seconds']:.0f} s wall, {results['total_cpu_seconds']:.0f} s CPU"
    ]
    if not math.isfinite(energy_mse):
        lines.append("warning: the learned dynamics blew up along a rollout (non-finite energy error)")
    return lines


COMMAND = Command(
    name="learn-hamiltonian",
    help="learn a Hamiltonian from noisy trajectories",
    description=__doc__,
    options=OPTIONS,
    run=run,
    report=report,
    evaluate_checkpoint=evaluate_checkpoint,
)
