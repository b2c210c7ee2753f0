"""Figures of trained models and their results, written to files (matplotlib on the non-interactive Agg backend).

One function per application (``canonflow``'s subcommands write them to ``OUT/figures``): action-angle planes,
actions and frequencies; density samples and training curves; free-energy spectra and samples; learned
Hamiltonians and rollouts; sampler comparisons; bar charts of speedups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from canonflow.checkpoint import atomic_write

__all__ = [
    "plot_action_angle",
    "plot_bars",
    "plot_density_samples",
    "plot_free_energy",
    "plot_hamiltonian",
    "plot_samplers",
    "plot_scatter",
    "plot_training_curves",
    "pyplot",
    "save_figure",
]


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures are written to files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_action_angle(
    model: Any,
    states: torch.Tensor,
    times: torch.Tensor,
    exact: torch.Tensor | None,
    matched: list[int] | None,
    out: Path,
    title: str = "",
    num_shown: int = 8,
) -> None:
    """Write ``phase_planes.png`` (trajectories in the ``(q_k, p_k)`` and learned ``(q̂_k, p̂_k)`` planes),
    ``actions.png`` (``I_k(t)/mean_t I_k``) and ``frequencies.png`` (learned ``|dφ_k/dt|`` against exact) of an
    ``ActionAngleFlow``. ``matched`` pairs latent dofs with exact frequencies as
    :func:`canonflow.action_angle.frequency_error` does (an exact dof per latent dof for ``exact (B, n)``, a
    winding number for ``exact (B,)``)."""
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
            axis.set(xlabel=f"{label[0]}{k + 1}", ylabel=f"{label[1]}{k + 1}")
            axis.set_aspect("equal", adjustable="datalim")
    figure.suptitle(f"{title}\nphysical (top) and learned (bottom) planes", fontsize=9)
    _save(plt, figure, out / "phase_planes.png", 110)

    figure, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    for k in range(n):
        for b in range(len(actions)):
            axes[0, k].plot(times, actions[b, :, k] / actions[b, :, k].mean(), lw=0.8)
        axes[0, k].set(xlabel="t", ylabel=f"I{k + 1}(t) / mean")
    figure.suptitle("learned actions along held-out trajectories", fontsize=9)
    _save(plt, figure, out / "actions.png", 110)

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
    _save(plt, figure, out / "frequencies.png", 110)


def plot_scatter(panels: Mapping[str, np.ndarray], path: Path, labels: tuple[str, str] = ("q", "p")) -> None:
    """One scatter plot of the first two coordinates per panel (title: its key), side by side."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), sharex=True, sharey=True)
    for axis, (title, points) in zip(axes, panels.items(), strict=True):
        axis.scatter(points[:, 0], points[:, 1], s=1, alpha=0.3)
        axis.set(title=title, xlabel=labels[0], ylabel=labels[1])
    _save(plt, figure, path, 100)


def plot_training_curves(
    results: Mapping[str, Any], path: Path, *, ylabel: str, offset: float = 0.0, log: bool = False
) -> None:
    """The (windowed) training loss minus ``offset``, and the validation curve where there is one, along
    training for every model in ``results["models"]``."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, entry in results["models"].items():
        curve, validation = entry["loss_curve"], entry.get("validation_curve", {"steps": []})
        values = np.asarray(curve["values"]) - offset
        (line,) = axis.plot(curve["steps"], values, label=f"{label} (train)" if "validation_curve" in entry else label)
        if validation["steps"]:
            axis.plot(validation["steps"], validation["values"], "o--", color=line.get_color(), label=f"{label} (val.)")
    if log:
        axis.set_yscale("log")
    name = results.get("dataset", results.get("system"))
    axis.set(xlabel="step", ylabel=ylabel, title=f"{name}: training curves")
    axis.legend(fontsize=7)
    _save(plt, figure, path, 120)


def plot_density_samples(drawn: Mapping[str, np.ndarray], test: np.ndarray, dataset: str, path: Path) -> None:
    """Test data next to samples of each model (ring2d: scatter plots; digits: 8 images per row)."""
    plt = pyplot()
    if dataset == "ring2d":
        figure, axes = plt.subplots(1, len(drawn) + 1, figsize=(4 * (len(drawn) + 1), 4))
        for axis, (title, points) in zip(axes, [("data", test[:2000]), *drawn.items()], strict=True):
            axis.scatter(points[:, 0], points[:, 1], s=1, alpha=0.4)
            axis.set(title=title, xlim=(-3.5, 3.5), ylim=(-3.5, 3.5))
            axis.set_aspect("equal")
    else:
        figure, axes = plt.subplots(len(drawn) + 1, 8, figsize=(8, 1.1 * (len(drawn) + 1)))
        rows = [("data", test[:8]), *((k, v[:8]) for k, v in drawn.items())]
        for row, (title, images) in zip(axes, rows, strict=True):
            for axis, image in zip(row, images, strict=True):
                axis.imshow(image.reshape(8, 8), cmap="gray_r")
                axis.axis("off")
            row[0].set_title(title, fontsize=7, loc="left")
    _save(plt, figure, path, 120)


def plot_free_energy(
    entry: Mapping[str, Any], drawn: np.ndarray, target: np.ndarray | None, name: str, beta: float, figures: Path
) -> None:
    """``latent_spectrum.png`` (the learned latent frequencies of ``entry``) and ``samples.png`` (model samples
    ``drawn`` against exact Boltzmann samples ``target``, or for the double well against the exact density)."""
    plt = pyplot()
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
    _save(plt, figure, figures / "latent_spectrum.png", 120)

    figure, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    if target is None:  # the double well: the marginal of q against its exact density
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
        i, j = (0, 1) if name == "ring2d" else (0, drawn.shape[1] // 2 - 1)
        for axis, data, title in ((axes[0], target, "exact Boltzmann"), (axes[1], drawn, "canonflow")):
            axis.scatter(data[:, i], data[:, j], s=1, alpha=0.3)
            axis.set_title(f"{title}: q_{i + 1} vs q_{j + 1}")
            axis.set_aspect("equal")
    _save(plt, figure, figures / "samples.png", 120)


def plot_hamiltonian(
    grid: torch.Tensor,
    true: torch.Tensor,
    learned: torch.Tensor,
    rollout: Any,
    energy_scale: float,
    n: int,
    figures: Path,
) -> None:
    """``hamiltonian_contours.png`` (true, learned offset-corrected and difference of ``H`` on the 101 × 101
    test plane ``grid``), ``rollouts.png`` (learned vs true phase portraits of a ``Rollout``) and
    ``energy_error.png`` (the squared energy error along the rollouts, in units ``energy_scale·H``)."""
    plt = pyplot()
    learned = learned - (learned - true).mean()
    plane, labels = ([0, 1], ("q", "p")) if n == 1 else ([1, 3], ("q_y", "p_y"))
    u, v = (grid[:, k].reshape(101, 101) for k in plane)
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    levels = torch.linspace(float(true.min()), float(true.max()), 20).numpy()
    for axis, values, title in ((axes[0], true, "true H"), (axes[1], learned, "learned H_θ − c")):
        axis.contour(u, v, values.reshape(101, 101), levels=levels, cmap="viridis")
        axis.set_title(title)
    image = axes[2].pcolormesh(u, v, (learned - true).reshape(101, 101), cmap="coolwarm", shading="auto")
    figure.colorbar(image, ax=axes[2])
    axes[2].set_title("H_θ − c − H")
    for axis in axes:
        axis.set(xlabel=f"${labels[0]}$", ylabel=f"${labels[1]}$")
    _save(plt, figure, figures / "hamiltonian_contours.png", 90)

    labels = ("q", "p") if n == 1 else ("q_x", "q_y")
    figure, axis = plt.subplots(figsize=(5, 4.5))
    for r in range(min(5, rollout.true_states.shape[0])):
        axis.plot(*rollout.true_states[r, :, [0, 1]].T, "k-", lw=1, label="true" if r == 0 else None)
        axis.plot(*rollout.learned_states[r, :, [0, 1]].T, "C1--", lw=1, label="learned" if r == 0 else None)
    axis.set(xlabel=f"${labels[0]}$", ylabel=f"${labels[1]}$", title="rollouts: learned vs true dynamics")
    axis.legend()
    _save(plt, figure, figures / "rollouts.png", 90)

    figure, axis = plt.subplots(figsize=(6, 4))
    squared = (energy_scale * rollout.energy_error).pow(2)
    axis.semilogy(rollout.times, squared.mean(0).clamp_min(1e-16), label="mean over rollouts")
    axis.set(xlabel="t", ylabel="(E(x̂(t)) − E(x(t)))²", title="energy error along rollouts")
    axis.legend()
    _save(plt, figure, figures / "energy_error.png", 90)


def plot_samplers(target: Any, results: Mapping[str, Any], scores: Mapping[str, Any], figures: Path) -> None:
    """``samples.png`` (first two coordinates, over the potential's contours in 2-D or exact draws of an
    ``exact`` target), ``traces.png`` and ``ess.png`` (ESS per evaluation) of the samplers' ``SamplingResult``s on
    ``target``."""
    plt = pyplot()
    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4), squeeze=False)
    drawn = [result.samples[:, :, :2].reshape(-1, 2) for result in results.values()]
    exact = target.sample(4000, torch.Generator().manual_seed(0)).numpy() if target.exact else None
    lo, hi = np.quantile(exact[:, :2] if target.exact else torch.cat(drawn).numpy(), [0.005, 0.995], axis=0)
    pad = 0.2 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    grid = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150)), -1)
    if target.dim == 2:
        level = target.potential(torch.from_numpy(grid.reshape(-1, 2))).numpy().reshape(150, 150)
    for ax, name in zip(axes[0], names, strict=True):
        draws = results[name].samples[:, :, :2].reshape(-1, 2).numpy()
        if target.dim == 2:
            ax.contour(grid[..., 0], grid[..., 1], np.exp(-(level - level.min())), levels=8, colors="k", linewidths=0.6)
        elif exact is not None:
            ax.scatter(exact[:, 0], exact[:, 1], s=1, c="0.7", label="exact")
        ax.scatter(draws[:, 0], draws[:, 1], s=1, alpha=0.3)
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), title=name, xlabel="q1", ylabel="q2")
    _save(plt, fig, figures / "samples.png", 80)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.8 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        ax.plot(results[name].samples[:, :4, 0].numpy(), lw=0.6)
        ax.set_ylabel(name, fontsize=7)
    axes[-1, 0].set_xlabel("iteration (q1, 4 chains)")
    _save(plt, fig, figures / "traces.png", 80)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(names, [scores[name]["ess_per_evaluation"] for name in names])
    ax.set(yscale="log", ylabel="min bulk ESS / target evaluation")
    ax.tick_params(axis="x", labelsize=7)
    _save(plt, fig, figures / "ess.png", 80)


def plot_bars(panels: Sequence[tuple[str, list[str], list[float], str]], ylabel: str, path: Path) -> None:
    """One bar chart per ``(title, labels, heights, xlabel)`` panel, side by side, with a line at 1."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5))
    for axis, (title, labels, heights, xlabel) in zip(axes, panels, strict=True):
        axis.bar(labels, heights)
        axis.axhline(1.0, color="k", lw=0.8)
        axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
        axis.title.set_fontsize(8)
    _save(plt, figure, path, 100)


def save_figure(figure: Any, path: Path, dpi: int = 100) -> None:
    """Write the matplotlib ``figure`` to ``path`` atomically (format from the suffix) and close it."""
    _save(pyplot(), figure, path, dpi)


def _save(plt: Any, figure: Any, path: Path, dpi: int) -> None:
    """Write ``figure`` to ``path`` atomically (a crash leaves the old file or none, never a torn one)."""
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    atomic_write(path, lambda stream: figure.savefig(stream, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png"))
    plt.close(figure)
