"""``canonflow learn-hamiltonian``: learn a Hamiltonian from noisy trajectories and compare it with the truth.

Protocols (all with canonflow's public API):

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from canonflow.checkpoint import save_model
from canonflow.cli.run import (
    COMMON_OPTIONS,
    TRAINING_OPTIONS,
    Command,
    Option,
    complete,
    figures_dir,
    pyplot,
    training_options,
)
from canonflow.data import TrajectoryData, trajectories
from canonflow.hamiltonian_learning import (
    MODES,
    HamiltonianNet,
    Rollout,
    evaluate_hamiltonian,
    fit_hamiltonian,
    hamiltonian_test_sets,
    rollout,
)
from canonflow.systems import (
    CoupledOscillator,
    DoubleWell,
    HamiltonianSystem,
    HarmonicOscillator,
    HenonHeiles,
    Pendulum,
)
from canonflow.training import TrainConfig

__all__ = ["COMMAND", "OPTIONS", "PROTOCOLS", "Protocol", "run"]


@dataclass
class Protocol:
    """Everything that defines one experiment."""

    system: HamiltonianSystem
    protocol: str
    default_mode: str
    num_train: int
    num_validation: int
    t_end: float
    num_points: int
    noise_std: float
    initial: str
    hidden: int = 64
    depth: int = 2
    activation: str = "tanh"
    polynomial: int = 0
    base_steps: int = 0
    steps: int = 3000
    lr: float = 3e-3
    batch_size: int | None = 256
    window: int = 7
    derivatives: str = "finite_difference"
    energy_scale: float = 1.0
    rollout_t_end: float = 20.0
    anchors: dict = field(default_factory=dict)


PROTOCOLS = {
    "spring": Protocol(
        HarmonicOscillator(1, omega=1.0), "Greydanus et al. 2019 (HNN), mass-spring", "derivative",
        25, 25, 6.0, 30, 0.1, "radius:0.1:1.0", hidden=200, activation="softplus", steps=2000, lr=1e-3,
        batch_size=None, derivatives="exact", energy_scale=2.0, rollout_t_end=40.0, anchors={"energy_mse": 3.84e-4},
    ),
    "pendulum": Protocol(
        Pendulum(g=1.5, l=1.0), "Greydanus et al. 2019 (HNN), ideal pendulum", "derivative",
        25, 25, 6.0, 45, 0.1, "radius:1.3:2.3", hidden=200, steps=2000, lr=1e-3, batch_size=None,
        derivatives="exact", energy_scale=2.0, rollout_t_end=40.0, anchors={"energy_mse": 2.49e-2},
    ),
    "double_well": Protocol(
        DoubleWell(), "Choudhary et al. 2024, double well", "implicit_midpoint",
        100, 20, 0.49, 50, 0.01, "box:2.0", polynomial=4, base_steps=1000,
        anchors={"uniform": 0.0104, "grid": 0.0116, "gaussian": 0.155},
    ),
    "coupled_oscillator": Protocol(
        CoupledOscillator(0.5), "Choudhary et al. 2024, coupled oscillator (α = 0.5)", "implicit_midpoint",
        100, 20, 0.49, 50, 0.01, "box:2.0", polynomial=2, base_steps=1000,
        anchors={"uniform": 0.0129, "grid": 0.0133, "gaussian": 0.0167, "anchor_model": "SHNN baseline"},
    ),
    "henon_heiles": Protocol(
        HenonHeiles(), "Choudhary et al. 2024 protocol, Hénon–Heiles (slice q_x=0.1, p_x=0.2)", "implicit_midpoint",
        100, 20, 0.49, 50, 0.01, "system",
    ),
}  # fmt: skip


def initial_states(protocol: Protocol, num: int, generator: torch.Generator) -> torch.Tensor:
    """``num`` initial states drawn as the protocol says (float64)."""
    kind, *values = protocol.initial.split(":")
    if kind == "radius":  # Greydanus et al.'s sampler: y ~ U[−1, 1]², x₀ = r·y/‖y‖
        low, high = map(float, values)
        direction = 2.0 * torch.rand(num, 2, generator=generator, dtype=torch.float64) - 1.0
        direction = direction / direction.norm(dim=-1, keepdim=True)
        radius = low + (high - low) * torch.rand(num, 1, generator=generator, dtype=torch.float64)
        return direction * radius
    if kind == "box":
        half = float(values[0])
        return (2.0 * torch.rand(num, 2, generator=generator, dtype=torch.float64) - 1.0) * half
    return protocol.system.sample_initial(num, generator)


def rollout_initial_states(name: str, protocol: Protocol, generator: torch.Generator) -> torch.Tensor:
    """The 15 rollout initial states (Greydanus et al.'s spring sampler for the spring, else the training law)."""
    if name == "spring":
        magnitude = 0.2 + 0.8 * torch.rand(15, 2, generator=generator, dtype=torch.float64)
        sign = torch.where(torch.rand(15, 2, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
        return magnitude * sign
    return initial_states(protocol, 15, generator)


def plot_contours(model: torch.nn.Module, protocol: Protocol, path: Path) -> None:
    """True, learned (offset-corrected) and difference of H on the test plane."""
    system = protocol.system
    grid = hamiltonian_test_sets(system, grid_size=101, num=1)["grid"]
    plane = [0, 1] if system.n == 1 else [1, 3]
    with torch.no_grad():
        true = system(grid)
        learned = model(grid.to(next(model.parameters()).dtype)).to(torch.float64)
    learned = learned - (learned - true).mean()
    u = grid[:, plane[0]].reshape(101, 101)
    v = grid[:, plane[1]].reshape(101, 101)
    labels = ("q", "p") if system.n == 1 else ("q_y", "p_y")
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    levels = torch.linspace(float(true.min()), float(true.max()), 20).numpy()
    for ax, values, title in ((axes[0], true, "true H"), (axes[1], learned, "learned H_θ − c")):
        ax.contour(u, v, values.reshape(101, 101), levels=levels, cmap="viridis")
        ax.set_title(title)
    image = axes[2].pcolormesh(u, v, (learned - true).reshape(101, 101), cmap="coolwarm", shading="auto")
    fig.colorbar(image, ax=axes[2])
    axes[2].set_title("H_θ − c − H")
    for ax in axes:
        ax.set_xlabel(f"${labels[0]}$")
        ax.set_ylabel(f"${labels[1]}$")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_rollouts(result: Rollout, protocol: Protocol, directory: Path) -> None:
    """Phase portraits of learned vs true rollouts, and the energy error over time."""
    system = protocol.system
    plane = [0, 1] if system.n == 1 else [0, 1]
    labels = ("q", "p") if system.n == 1 else ("q_x", "q_y")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for r in range(min(5, result.true_states.shape[0])):
        ax.plot(*result.true_states[r, :, plane].T, "k-", lw=1, label="true" if r == 0 else None)
        ax.plot(*result.learned_states[r, :, plane].T, "C1--", lw=1, label="learned" if r == 0 else None)
    ax.set_xlabel(f"${labels[0]}$")
    ax.set_ylabel(f"${labels[1]}$")
    ax.legend()
    ax.set_title("rollouts: learned vs true dynamics")
    fig.tight_layout()
    fig.savefig(directory / "rollouts.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    squared = (protocol.energy_scale * result.energy_error).pow(2)
    ax.semilogy(result.times, squared.mean(0).clamp_min(1e-16), label="mean over rollouts")
    ax.set_xlabel("t")
    ax.set_ylabel("(E(x̂(t)) − E(x(t)))²")
    ax.set_title("energy error along rollouts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(directory / "energy_error.png", dpi=90)
    plt.close(fig)


def _non_negative(value: int) -> str | None:
    return None if value >= 0 else f"must be >= 0, got {value}"


OPTIONS = (
    Option("system", "spring", "system and protocol", choices=sorted(PROTOCOLS)),
    Option("mode", None, "loss", kind=str, choices=MODES, default_text="the protocol's"),
    Option("adjoint", None, "implicit midpoint: adjoint gradients", kind=bool, default_text="on for implicit_midpoint"),
    Option("lr", None, "Adam learning rate", kind=float, default_text="the protocol's"),
    Option(
        "polynomial",
        None,
        "degree of HamiltonianNet's polynomial part (0: none)",
        kind=int,
        default_text="the protocol's",
        check=_non_negative,
    ),
    Option(
        "base_steps",
        None,
        "steps fitting the polynomial part alone first (0: none)",
        kind=int,
        default_text="the protocol's (0 without a polynomial part)",
        check=_non_negative,
    ),
    *TRAINING_OPTIONS,
    *COMMON_OPTIONS,
)


def _split(data: TrajectoryData, num_train: int, num_validation: int) -> tuple[TrajectoryData, TrajectoryData]:
    parts = zip(
        data.states.split([num_train, num_validation]),
        data.clean_states.split([num_train, num_validation]),
        data.derivatives.split([num_train, num_validation]),
        strict=True,
    )
    train, validation = (type(data)(data.times, s, c, d, data.noise_std, data.system_name) for s, c, d in parts)
    return train, validation


def _errors(model: torch.nn.Module, protocol: Protocol, seed: int, quick: bool) -> dict[str, Any]:
    """Hamiltonian errors on the test sets and energy/state errors along the 15 rollouts."""
    system = protocol.system
    errors = evaluate_hamiltonian(model, system, seed=seed, num=10_000 if quick else 100_000)
    greydanus = protocol.energy_scale != 1.0
    dt_rollout = 0.2 if greydanus else 0.05
    num_points = 100 if greydanus else 201
    t_end = protocol.rollout_t_end if greydanus else dt_rollout * (num_points - 1)
    name = next(key for key, value in PROTOCOLS.items() if value is protocol)
    start_states = rollout_initial_states(name, protocol, torch.Generator().manual_seed(seed + 2))
    rolled = rollout(model, system, start_states, t_end, num_points, integrator="rk4", substeps=20)
    per_rollout = protocol.energy_scale**2 * rolled.energy_error.pow(2).mean(1)
    separatrix = getattr(system, "separatrix_energy", None)
    librating = None if separatrix is None else system(start_states) < separatrix
    summary = {
        "energy_mse": protocol.energy_scale**2 * rolled.energy_mse,
        "energy_mse_per_rollout": per_rollout.tolist(),
        "energy_mse_librations": None if librating is None else float(per_rollout[librating].mean()),
        "num_librations": None if librating is None else int(librating.sum()),
        "energy_units": "H_G = 2H (Greydanus et al.)" if greydanus else "H",
        "state_mse": rolled.state_mse,
        "num_rollouts": start_states.shape[0],
        "t_end": t_end,
        "num_points": num_points,
        "integrator": "rk4, 20 substeps per sample",
    }
    return {"hamiltonian_error": errors, "rollout": summary, "rolled": rolled}


def run(config: dict[str, Any], out: Path | None = None, *, progress: bool = True, resume: bool = False) -> dict:
    """Fit a ``HamiltonianNet`` per the protocol ``config["system"]``; write model and figures to ``out``;
    return the results of the module docstring."""
    config = complete(OPTIONS, config)
    name, seed, quick = config["system"], config["seed"], config["quick"]
    protocol = PROTOCOLS[name]
    mode = config["mode"] or protocol.default_mode
    adjoint = mode == "implicit_midpoint" and config["adjoint"] is not False
    lr = config["lr"] if config["lr"] is not None else protocol.lr
    polynomial = config["polynomial"] if config["polynomial"] is not None else protocol.polynomial
    base_steps = config["base_steps"] if config["base_steps"] is not None else protocol.base_steps
    base_steps = base_steps if polynomial else 0
    if quick:
        base_steps = min(base_steps, 50)
    num_train = max(4, protocol.num_train // 5) if quick else protocol.num_train
    system = protocol.system
    started, cpu_started = time.perf_counter(), time.process_time()
    generator = torch.Generator().manual_seed(seed)
    num = num_train + protocol.num_validation
    data = trajectories(
        system,
        num,
        (protocol.t_end, protocol.num_points),
        initial=initial_states(protocol, num, generator),
        noise_std=protocol.noise_std,
        seed=seed + 1,
    )
    train_data, validation_data = _split(data, num_train, protocol.num_validation)
    torch.manual_seed(seed)
    model = HamiltonianNet(
        system.n,
        hidden=protocol.hidden,
        depth=protocol.depth,
        activation=protocol.activation,
        separable=mode == "leapfrog",
        polynomial=polynomial,
        dtype=config["dtype"],
    ).to(config["device"])
    preset = {"steps": 100 if quick else protocol.steps, "lr": lr}
    options = training_options(config, out, preset, description=f"{name}/{mode}", progress=progress, resume=resume)
    options["eval_every"] = max(1, options["steps"] // 20)
    result = fit_hamiltonian(
        model,
        train_data,
        mode,
        adjoint=adjoint,
        derivatives=protocol.derivatives,
        window=protocol.window,
        batch_size=protocol.batch_size,
        config=TrainConfig(**options),
        validation_data=validation_data,
        base_steps=base_steps,
    )
    train_seconds = time.perf_counter() - started
    model = model.cpu()
    errors = _errors(model, protocol, seed, quick)
    rolled = errors.pop("rolled")
    results = {
        "system": name,
        "system_repr": repr(system),
        "protocol": protocol.protocol,
        "mode": mode,
        "adjoint": adjoint,
        "derivatives": protocol.derivatives if mode == "derivative" else None,
        "data": {
            "num_train": num_train,
            "num_validation": protocol.num_validation,
            "t_end": protocol.t_end,
            "num_points": protocol.num_points,
            "dt": protocol.t_end / (protocol.num_points - 1),
            "noise_std": protocol.noise_std,
            "initial": protocol.initial,
            "window": protocol.window if mode != "derivative" else None,
        },
        "model": model.config(),
        "training": {
            "steps": result.steps,
            "base_steps": base_steps,
            "lr": lr,
            "batch_size": protocol.batch_size,
            "final_loss": result.losses[-1] if result.losses else None,
            "best_validation": result.best_validation,
            "best_step": result.best_step,
            "seconds": train_seconds,
        },
        **errors,
        "anchors": protocol.anchors,
        "total_seconds": time.perf_counter() - started,
        "total_cpu_seconds": time.process_time() - cpu_started,
    }
    if out is not None:
        extra = {"command": "learn-hamiltonian", "system": name, "mode": mode, "adjoint": adjoint, "config": config}
        save_model(out / "model.pt", model, extra=extra)
        figures = figures_dir(out)
        plot_contours(model, protocol, figures / "hamiltonian_contours.png")
        plot_rollouts(rolled, protocol, figures)
    return results


def evaluate_checkpoint(model: torch.nn.Module, extra: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Hamiltonian and rollout errors of a ``model.pt`` written by ``canonflow learn-hamiltonian``."""
    trained = complete(OPTIONS, extra.get("config", {"system": extra["system"]}))
    errors = _errors(model, PROTOCOLS[trained["system"]], trained["seed"], config["quick"])
    errors.pop("rolled")
    return errors


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
