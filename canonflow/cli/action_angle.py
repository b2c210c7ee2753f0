"""``canonflow action-angle``: learn action-angle coordinates of a benchmark system and evaluate them.

:func:`run` trains an :class:`~canonflow.action_angle.ActionAngleFlow` on trajectories of one of
:data:`BENCHMARKS`, evaluates it on held-out trajectories from another seed (drawn from the same region of
phase space) and writes ``model.pt``, ``training.pt`` and ``figures/`` to ``OUT``. Results: the held-out
metrics of :func:`canonflow.action_angle.evaluate` (``action_conservation``, ``angle_r2``, ``angle_r2_min``,
``frequencies``, ``frequency_error``, ``frequency_matched``, ``angle_independence``) and ``system``,
``description``, ``n``, ``model``, ``parameters``, ``training``, ``training_seconds``, ``training_steps``,
``best_validation_loss`` (presets that train), ``data_seconds``, ``num_train``, ``num_test``, ``anchor``, and
``action_error`` for presets that compare with the system's exact actions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from canonflow.action_angle.charts import birkhoff_chart, normal_mode_chart
from canonflow.action_angle.core import ActionAngleFlow, evaluate, parameter_count
from canonflow.action_angle.families import toda_loop_orbits
from canonflow.cli.run import (
    COMMON_OPTIONS,
    TRAINING_OPTIONS,
    Command,
    Option,
    complete,
    figures_dir,
    pyplot,
    run_device,
    training_options,
    writes_outputs,
)
from canonflow.data import TrajectoryData, trajectories
from canonflow.distributed import DistributedContext
from canonflow.systems import (
    CalogeroMoser,
    CentreOfMassFrame,
    HamiltonianSystem,
    HarmonicOscillator,
    Kepler,
    Toda,
    get_system,
)

__all__ = ["BENCHMARKS", "COMMAND", "OPTIONS", "Benchmark", "plot_benchmark", "run"]


@dataclass
class Benchmark:
    """A benchmark preset.

    ``make_system()`` builds the system; ``sample(system, num, generator)`` draws initial conditions of the
    region of interest; trajectories are sampled at ``linspace(0, t_end, num_times)``. ``exact(system, x0)``
    gives exact frequencies (``(B, n)`` per dof or ``(B,)`` fundamental, see
    :func:`canonflow.action_angle.frequency_error`) or ``None``. ``model`` holds ``ActionAngleFlow`` keyword
    arguments, ``train``/``quick`` training settings for :meth:`ActionAngleFlow.fit` (``quick`` overrides
    ``train`` with ``--quick``). ``chart(system)``, if given, builds the model's ``chart`` spec from the system
    (e.g. :func:`~canonflow.action_angle.normal_mode_chart` at its equilibrium). ``train=None`` marks an exact
    chart: nothing is trained and the model is evaluated as built. ``terms(system)``, if given, adds loss terms
    that need the system to :meth:`ActionAngleFlow.fit` (e.g. the normal-form term). With ``compare_actions``
    the metrics also report ``action_error`` against the system's exact ``actions``.
    """

    description: str
    make_system: Callable[[], HamiltonianSystem]
    sample: Callable[[HamiltonianSystem, int, torch.Generator], torch.Tensor]
    t_end: float
    num_times: int
    num_train: int
    num_test: int
    model: dict[str, Any]
    train: dict[str, Any] | None
    quick: dict[str, Any] = field(default_factory=dict)
    exact: Callable[[HamiltonianSystem, torch.Tensor], torch.Tensor | None] = lambda system, x0: None
    anchor: str = "-"
    chart: Callable[[HamiltonianSystem], dict[str, Any]] | None = None
    terms: Callable[[HamiltonianSystem], dict[str, Any]] | None = None
    compare_actions: bool = False


def _default_sample(system: HamiltonianSystem, num: int, generator: torch.Generator) -> torch.Tensor:
    return system.sample_initial(num, generator=generator)


def _kepler_sample(system: HamiltonianSystem, num: int, generator: torch.Generator) -> torch.Tensor:
    return system.sample_orbits(num, energy_range=(-0.8, -0.3), eccentricity_range=(0.1, 0.7), generator=generator)


def _kepler_exact(system: HamiltonianSystem, x0: torch.Tensor) -> torch.Tensor:
    return system.frequencies(x0)


def _isochronous_exact(system: HamiltonianSystem, x0: torch.Tensor) -> torch.Tensor:
    """The fundamental frequency ``ω`` shared by every orbit of an isochronous system (Calogero–Moser), ``(B,)``."""
    return torch.full((len(x0),), system.omega, dtype=x0.dtype)


_KEPLER2D_MODEL = {
    "chart": {"name": "kepler", "k": 1.0},
    "symmetry_planes": 1,
    "blocks": 4,
    "hidden": 32,
    "householder": 0,
    "scaled": True,
    "twist": 16,
}
"""Kepler chart (log-polar, centred; plane 2 = angular momentum) + origin-fixing, ``G``-conserving learned shears
and twists, written in the chart's scaling (``F(w, G) = G Φ(w/√G, G)``, ``A(I, G) = G α(I/G, G)``)."""

BENCHMARKS: dict[str, Benchmark] = {
    "oscillator": Benchmark(
        description="3 uncoupled harmonic oscillators, ω = (1, 1.7, 2.3)",
        make_system=lambda: HarmonicOscillator(3, omega=[1.0, 1.7, 2.3]),
        sample=_default_sample,
        t_end=4 * math.pi,
        num_times=100,
        num_train=256,
        num_test=128,
        model={"blocks": 0},
        train={"steps": 3000, "lr": 3e-2, "batch_size": 64, "times_per_batch": 32},
        quick={"steps": 600},
        exact=lambda system, x0: system.frequencies(x0),
        anchor="-",
    ),
    "kepler2d": Benchmark(
        description="planar Kepler family, k = 1, E ∈ [−0.8, −0.3], e ∈ [0.1, 0.7], counter-clockwise; one model",
        make_system=lambda: Kepler(2),
        sample=_kepler_sample,
        t_end=14.0,
        num_times=100,
        num_train=512,
        num_test=128,
        model=_KEPLER2D_MODEL,
        train={
            "steps": 3000,
            "lr": 1e-2,
            "batch_size": 32,
            "times_per_batch": 32,
            "polish_steps": 45,
            "time_limit": 600.0,
        },
        quick={"steps": 1000, "num_train": 256, "polish_steps": 5, "time_limit": 150.0},
        exact=_kepler_exact,
        anchor="multi-orbit model did not converge (single orbit: circle loss 2e-9 after 52k iterations)",
    ),
    "kepler2d_demo": Benchmark(
        description="planar Kepler family as kepler2d, trained for at most 3 minutes (the demo)",
        make_system=lambda: Kepler(2),
        sample=_kepler_sample,
        t_end=14.0,
        num_times=100,
        num_train=256,
        num_test=128,
        model=_KEPLER2D_MODEL,
        train={
            "steps": 1500,
            "lr": 1e-2,
            "batch_size": 32,
            "times_per_batch": 32,
            "polish_steps": 100,
            "time_limit": 170.0,
        },
        quick={"steps": 100, "num_train": 64, "polish_steps": 1, "time_limit": 40.0},
        exact=_kepler_exact,
        anchor="multi-orbit model did not converge",
    ),
    "kepler3d": Benchmark(
        description="Kepler family in 3D, k = 1, E ∈ [−0.8, −0.3], e ∈ [0.1, 0.7], random orientation",
        make_system=lambda: Kepler(3),
        sample=_default_sample,
        t_end=14.0,
        num_times=100,
        num_train=512,
        num_test=128,
        model={"blocks": 6, "hidden": 64, "householder": 0},
        train={"steps": 8000, "lr": 3e-3, "batch_size": 32, "times_per_batch": 32, "time_limit": 540.0},
        quick={"steps": 1500, "num_train": 256, "time_limit": 150.0},
        exact=_kepler_exact,
    ),
    "toda3": Benchmark(
        description="periodic Toda lattice, N = 3, centre-of-mass frame (2 dof), q, p ~ N(0, 0.5²)",
        make_system=lambda: CentreOfMassFrame(Toda(3, periodic=True)),
        sample=_default_sample,
        t_end=15.0,
        num_times=100,
        num_train=512,
        num_test=128,
        model={"blocks": 4, "hidden": 64},
        train={
            "steps": 2000,
            "lr": 3e-3,
            "batch_size": 32,
            "times_per_batch": 32,
            "polish_steps": 200,
            "time_limit": 570.0,
        },
        quick={"steps": 1500, "num_train": 256, "time_limit": 150.0},
        anchor="~0.015 (Bondesan & Lamacraft)",
    ),
    "toda3_loops": Benchmark(
        description="periodic Toda lattice, N = 3, centre-of-mass frame (2 dof): the loop orbits with L = I₊ − I₋ > 0 "
        "of q, p ~ N(0, 0.5²); Birkhoff chart normalized to degree 5",
        make_system=lambda: CentreOfMassFrame(Toda(3, periodic=True)),
        sample=toda_loop_orbits,
        t_end=15.0,
        num_times=100,
        num_train=256,
        num_test=128,
        model={"blocks": 0, "householder": 0},
        train={"steps": 300, "lr": 1e-3, "batch_size": 32, "times_per_batch": 32, "time_limit": 570.0},
        quick={"steps": 50, "num_train": 64, "time_limit": 150.0},
        anchor="~0.015 (Bondesan & Lamacraft, ∂K/∂φ loss)",
        chart=lambda system: birkhoff_chart(system, [0.0] * 4, circular=[(0, 1)], order=5),
    ),
    "calogero_moser": Benchmark(
        description="Calogero–Moser, N = 3 in a harmonic trap (ω = g = 1); isochronous, fundamental ω = 1; "
        "exact action-angle chart from the Lax matrix (nothing trained)",
        make_system=lambda: CalogeroMoser(3),
        sample=_default_sample,
        t_end=4 * math.pi,
        num_times=100,
        num_train=0,
        num_test=128,
        model={"blocks": 0, "householder": 0},
        train=None,
        exact=_isochronous_exact,
        anchor="5e-3 (Bondesan & Lamacraft)",
        chart=lambda system: {"name": "calogero_moser", "N": system.N, "omega": system.omega, "g": system.g},
        compare_actions=True,
    ),
    "calogero_moser_learned": Benchmark(
        description="Calogero–Moser, N = 3 in a harmonic trap (ω = g = 1); isochronous, fundamental ω = 1; "
        "normal-mode chart at the equilibrium, generic flow, circle loss + normal-form term",
        make_system=lambda: CalogeroMoser(3),
        sample=_default_sample,
        t_end=4 * math.pi,
        num_times=100,
        num_train=512,
        num_test=128,
        model={"blocks": 4, "hidden": 64, "householder": 0},
        train={
            "steps": 1000,
            "lr": 3e-3,
            "batch_size": 32,
            "times_per_batch": 32,
            "polish_steps": 200,
            "time_limit": 570.0,
        },
        quick={"steps": 300, "num_train": 128, "polish_steps": 2, "time_limit": 150.0},
        exact=_isochronous_exact,
        anchor="5e-3 (Bondesan & Lamacraft)",
        chart=lambda system: normal_mode_chart(system, system.equilibrium()),
        terms=lambda system: {
            "hamiltonian": system.hamiltonian,
            "action_hamiltonian": system.action_hamiltonian,
            "normal_form_weight": 1.0,
        },
        compare_actions=True,
    ),
    "fput": Benchmark(
        description="FPUT-β chain, N = 4, β = 0.1, centre-of-mass frame (3 dof); near-integrable, not integrable",
        make_system=lambda: CentreOfMassFrame(get_system("fput", N=4, beta=0.1)),
        sample=_default_sample,
        t_end=20.0,
        num_times=100,
        num_train=512,
        num_test=128,
        model={"blocks": 4, "hidden": 64},
        train={"steps": 8000, "lr": 3e-3, "batch_size": 32, "times_per_batch": 32, "time_limit": 540.0},
        quick={"steps": 1500, "num_train": 256, "time_limit": 150.0},
    ),
}
"""The benchmark presets, by the name ``experiments/action_angle.py --system`` takes."""


OPTIONS = (
    Option("system", "oscillator", "benchmark system", choices=sorted(BENCHMARKS)),
    *TRAINING_OPTIONS,
    *COMMON_OPTIONS,
)
TEST_SEED_OFFSET = 1000


def _test_data(bench: Benchmark, system: HamiltonianSystem, seed: int, num: int) -> TrajectoryData:
    initial = bench.sample(system, num, torch.Generator().manual_seed(seed + TEST_SEED_OFFSET))
    return trajectories(system, num, (bench.t_end, bench.num_times), initial=initial)


def run(
    config: dict[str, Any],
    out: Path | None = None,
    *,
    progress: bool = True,
    resume: bool = False,
    distributed: DistributedContext | None = None,
) -> dict:
    """Train and evaluate the benchmark ``config["system"]``; write model and figures to ``out``; return the
    results of the module docstring.

    Training data come from ``seed``, held-out data from ``seed + 1000``. ``quick`` applies the preset's
    ``quick`` settings; ``steps`` and ``time_limit`` override the preset's.
    """
    config = complete(OPTIONS, config)
    name, seed = config["system"], config["seed"]
    bench = BENCHMARKS[name]
    system = bench.make_system()
    torch.manual_seed(seed)
    chart = {} if bench.chart is None else {"chart": bench.chart(system)}
    model = ActionAngleFlow(system.n, dtype=config["dtype"], **bench.model, **chart)
    began = time.perf_counter()
    test_data = _test_data(bench, system, seed, bench.num_test)
    data_seconds = time.perf_counter() - began
    if bench.train is None:
        num_train, training = 0, {"training": "none: exact chart", "training_seconds": 0.0, "training_steps": 0}
    else:
        preset = {**bench.train, **(bench.quick if config["quick"] else {})}
        num_train = preset.pop("num_train", bench.num_train)
        settings = training_options(config, out, preset, description=name, progress=progress, resume=resume)
        began = time.perf_counter()
        initial = bench.sample(system, num_train, torch.Generator().manual_seed(seed))
        train_data = trajectories(system, num_train, (bench.t_end, bench.num_times), initial=initial)
        data_seconds += time.perf_counter() - began
        device = run_device(config, distributed)
        terms = {} if bench.terms is None else bench.terms(system)
        result = model.to(device).fit(
            train_data.states.to(device), train_data.times.to(device), distributed=distributed, **terms, **settings
        )
        model = model.cpu()
        recorded = {**settings, **{key: value for key, value in terms.items() if not callable(value)}}
        training = {
            "training": {k: v for k, v in recorded.items() if k not in ("checkpoint", "progress", "resume")},
            "training_seconds": result.seconds,
            "training_steps": result.steps,
            "best_validation_loss": result.best_validation,
        }
    exact = bench.exact(system, test_data.states[:, 0])
    actions = system.actions if bench.compare_actions else None
    metrics = evaluate(model, test_data.states, test_data.times, system, exact, seed=seed, exact_actions=actions)
    metrics.update(
        {
            "system": name,
            "description": bench.description,
            "n": system.n,
            "model": model.config(),
            "parameters": parameter_count(model),
            **training,
            "data_seconds": data_seconds,
            "num_train": num_train,
            "num_test": bench.num_test,
            "anchor": bench.anchor,
        }
    )
    if writes_outputs(out, distributed):
        model.save(out / "model.pt", extra={"command": "action-angle", "system": name, "config": config})
        matched = metrics.get("frequency_matched")
        plot_benchmark(
            model, test_data.states, test_data.times, exact, matched, figures_dir(out), title=bench.description
        )
    return metrics


def evaluate_checkpoint(model: torch.nn.Module, extra: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The held-out metrics of an action-angle ``model.pt`` on fresh held-out trajectories of its system
    (``config["quick"]``: 16 of them instead of the preset's number)."""
    trained = complete(OPTIONS, extra.get("config", {"system": extra["system"]}))
    bench = BENCHMARKS[trained["system"]]
    system = bench.make_system()
    test_data = _test_data(bench, system, trained["seed"], 16 if config["quick"] else bench.num_test)
    exact = bench.exact(system, test_data.states[:, 0])
    actions = system.actions if bench.compare_actions else None
    seed = trained["seed"]
    return evaluate(model, test_data.states, test_data.times, system, exact, seed=seed, exact_actions=actions)


def plot_benchmark(
    model: ActionAngleFlow,
    states: torch.Tensor,
    times: torch.Tensor,
    exact: torch.Tensor | None,
    matched: list[int] | None,
    out: Path,
    title: str = "",
    num_shown: int = 8,
) -> None:
    """Write ``phase_planes.png`` (trajectories in the ``(q_k, p_k)`` and learned ``(q̂_k, p̂_k)`` planes),
    ``actions.png`` (``I_k(t)/mean_t I_k``) and ``frequencies.png`` (learned ``|dφ_k/dt|`` against exact).

    ``matched`` pairs latent dofs with exact frequencies as :func:`canonflow.action_angle.frequency_error` does
    (an exact dof per latent dof for ``exact (B, n)``, a winding number for ``exact (B,)``)."""
    plt = pyplot()

    n = model.n
    shown = states[:num_shown].to(model.dtype)
    with torch.no_grad():
        latent = model(shown)
        actions, _ = model.to_action_angle(shown)
    figure, axes = plt.subplots(2, n, figsize=(3.2 * n, 6.4), squeeze=False)
    for k in range(n):
        for row, (points, label) in enumerate(((shown, ("q", "p")), (latent, ("q̂", "p̂")))):
            axis = axes[row, k]
            for b in range(len(points)):
                axis.plot(points[b, :, k], points[b, :, n + k], lw=0.8)
            axis.set_xlabel(f"{label[0]}{k + 1}")
            axis.set_ylabel(f"{label[1]}{k + 1}")
            axis.set_aspect("equal", adjustable="datalim")
    figure.suptitle(f"{title}\nphysical (top) and learned (bottom) planes", fontsize=9)
    figure.tight_layout()
    figure.savefig(out / "phase_planes.png", dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    for k in range(n):
        axis = axes[0, k]
        for b in range(len(actions)):
            axis.plot(times, actions[b, :, k] / actions[b, :, k].mean(), lw=0.8)
        axis.set_xlabel("t")
        axis.set_ylabel(f"I{k + 1}(t) / mean")
    figure.suptitle("learned actions along held-out trajectories", fontsize=9)
    figure.tight_layout()
    figure.savefig(out / "actions.png", dpi=110)
    plt.close(figure)

    learned = model.frequencies(states.to(model.dtype), times.to(model.dtype)).abs()
    figure, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    for k in range(n):
        axis = axes[0, k]
        if exact is None or matched is None:
            axis.hist(learned[:, k], bins=30)
            axis.set_xlabel(f"learned |dφ{k + 1}/dt|")
        else:
            reference = exact * matched[k] if exact.dim() == 1 else exact[:, matched[k]]
            axis.scatter(reference, learned[:, k], s=6)
            low, high = float(reference.min()), float(reference.max())
            axis.plot([low, high], [low, high], "k--", lw=0.8)
            axis.set_xlabel(f"exact {matched[k]}ω" if exact.dim() == 1 else f"exact ω{matched[k] + 1}")
            axis.set_ylabel(f"learned |dφ{k + 1}/dt|")
    figure.suptitle("learned vs exact frequencies (held out)", fontsize=9)
    figure.tight_layout()
    figure.savefig(out / "frequencies.png", dpi=110)
    plt.close(figure)


def _numbers(values: Sequence[float], pattern: str = "{:.2e}") -> str:
    return ", ".join(pattern.format(v) for v in values)


def report(metrics: dict[str, Any]) -> list[str]:
    """The lines ``canonflow action-angle`` prints."""
    return [
        f"{metrics['system']}: {metrics['training_steps']} steps in {metrics['training_seconds']:.0f} s, "
        f"{metrics['parameters']} parameters",
        *held_out_lines(metrics),
    ]


def held_out_lines(metrics: dict[str, Any]) -> list[str]:
    """Held-out metrics per latent degree of freedom, one line each."""
    lines = [
        "held-out metrics per latent degree of freedom:",
        "  action conservation  median std_t(I)/mean_t(I): " + _numbers(metrics["action_conservation"]),
        "  angle linearity      median R² of φ(t):         " + _numbers(metrics["angle_r2"], "{:.6f}"),
    ]
    if "frequency_error" in metrics:
        lines.append("  frequency error      |dφ/dt| vs m·ω:            " + _numbers(metrics["frequency_error"]))
        lines.append(f"  winding numbers m:   {metrics['frequency_matched']}")
    lines.append(f"  angle independence   median std_φ(H)/|H|:      {metrics['angle_independence']:.2e}")
    if "action_error" in metrics:
        lines.append("  action error         median |I − I_exact|/I_exact: " + _numbers(metrics["action_error"]))
    return lines


COMMAND = Command(
    name="action-angle",
    help="learn action-angle coordinates of an integrable system",
    description=__doc__,
    options=OPTIONS,
    run=run,
    report=report,
    distributed=True,
    evaluate_checkpoint=evaluate_checkpoint,
)
