"""Variational free energies of Boltzmann distributions e^{-βH} with a canonical flow + oscillator base.

    python experiments/free_energy.py --system harmonic_chain --out experiments/results/free_energy_harmonic_chain
    python experiments/free_energy.py --system ring2d --out experiments/results/free_energy_ring2d
    python experiments/free_energy.py --system double_well --out experiments/results/free_energy_double_well

Trains the canonical flow (and, unless --no-baselines, nflows RealNVP and MAF baselines of about the same size
with a N(0, I) base) by reverse KL, then reports F_var, the importance-sampled F with standard error and ESS,
the exact F, the learned latent frequencies, and the training time. Writes metrics.json, model.pt (loadable
with canonflow.load) and figures to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from nflows.flows import Flow  # noqa: E402
from nflows.flows.autoregressive import MaskedAutoregressiveFlow  # noqa: E402
from nflows.flows.realnvp import SimpleRealNVP  # noqa: E402
from scipy import integrate  # noqa: E402

import canonflow  # noqa: E402
from canonflow.checkpoint import save_model  # noqa: E402
from canonflow.density import PhaseSpaceFlow, fit_variational, free_energy, latent_frequencies  # noqa: E402
from canonflow.distributions import PhaseSpaceNormal  # noqa: E402
from canonflow.systems import get_system  # noqa: E402
from canonflow.training import TrainConfig  # noqa: E402

# Per-system settings: the canonical model and training (full run, --quick run).
SETTINGS = {
    "harmonic_chain": dict(
        model=dict(blocks=0, linear="matrix_exp", linear_layers=3),
        batch=1024,
        lr=1e-2,
        steps=6000,
        quick_steps=300,
        time_limit=600,
        baseline=dict(hidden=32, layers=4, blocks=1),
    ),
    "ring2d": dict(
        model=dict(blocks=10, hidden=128, linear="nak", householder=2, full_linear=True),
        batch=512,
        lr=3e-3,
        steps=4000,
        quick_steps=200,
        time_limit=900,
        baseline=dict(hidden=32, layers=6, blocks=1),
    ),
    "double_well": dict(
        model=dict(blocks=6, hidden=96, linear="nak", householder=1, full_linear=True),
        batch=512,
        lr=3e-3,
        steps=2000,
        quick_steps=100,
        time_limit=600,
        baseline=dict(hidden=24, layers=4, blocks=1),
    ),
}
NEURALCT = {"harmonic_chain": -56.52, "ring2d": -3.89}


def double_well_free_energy(beta: float) -> float:
    """F = -(1/β) ln ∫ e^{-β(q⁴/4 - q²/2)} dq · sqrt(2π/β) by quadrature."""
    value, _ = integrate.quad(lambda q: math.exp(-beta * (q**4 / 4 - q**2 / 2)), -np.inf, np.inf, epsrel=1e-12)
    return -(math.log(value) + 0.5 * math.log(2 * math.pi / beta)) / beta


def exact_free_energy(system, name: str, beta: float) -> float:
    return double_well_free_energy(beta) if name == "double_well" else system.free_energy(beta)


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def baseline(kind: str, n: int, hidden: int, layers: int, blocks: int) -> Flow:
    """An nflows RealNVP / MAF transform on ℝ^{2n} with a N(0, I) base (not volume preserving)."""
    if kind == "realnvp":
        transform = SimpleRealNVP(2 * n, hidden, layers, blocks)._transform
    else:
        transform = MaskedAutoregressiveFlow(2 * n, hidden, layers, blocks)._transform
    return Flow(transform, PhaseSpaceNormal(n)).double()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=sorted(SETTINGS), required=True)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="a few hundred steps, small estimates (smoke test)")
    parser.add_argument("--out", default=None, help="output directory (default experiments/results/free_energy_SYSTEM)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--samples", type=int, default=None, help="samples for the free-energy estimates")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline-time-limit", type=float, default=300.0, help="seconds per baseline")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out or f"experiments/results/free_energy_{args.system}")
    out.mkdir(parents=True, exist_ok=True)
    settings = SETTINGS[args.system]
    steps = args.steps or (settings["quick_steps"] if args.quick else settings["steps"])
    samples = args.samples or (20_000 if args.quick else 200_000)
    system = get_system(args.system)
    n, beta = system.n, args.beta
    exact = exact_free_energy(system, args.system, beta)

    models = {"canonflow": PhaseSpaceFlow(n, beta=beta, **settings["model"]).double()}
    if not args.no_baselines:
        for kind in ("realnvp", "maf"):
            models[kind] = baseline(kind, n, **settings["baseline"])

    metrics: dict = {
        "system": args.system,
        "n": n,
        "beta": beta,
        "exact_free_energy": exact,
        "neuralct_free_energy": NEURALCT.get(args.system),
        "steps": steps,
        "seed": args.seed,
        "torch_threads": args.threads,
        "models": {},
    }
    curves = {}
    with canonflow.validation(False):
        for name, model in models.items():
            config = TrainConfig(
                steps=steps,
                lr=settings["lr"],
                seed=args.seed,
                grad_clip=None if name == "canonflow" else 10.0,
                time_limit=settings["time_limit"] if name == "canonflow" else args.baseline_time_limit,
                description=f"{args.system}/{name}",
            )
            began = time.perf_counter()
            result = fit_variational(model, system, beta, batch_size=settings["batch"], config=config)
            seconds = time.perf_counter() - began
            estimate = free_energy(model, system, beta, samples, torch.Generator().manual_seed(args.seed + 10))
            entry = {
                "parameters": parameter_count(model),
                "train_seconds": seconds,
                "steps_run": result.steps,
                **estimate.as_dict(),
                "variational_error": estimate.variational - exact,
                "importance_error": estimate.importance - exact,
            }
            if name == "canonflow":
                entry["frequencies"] = latent_frequencies(model).tolist()
                if args.system == "harmonic_chain":
                    true = system.normal_mode_frequencies().sort().values
                    relative = (latent_frequencies(model) - true) / true
                    entry["exact_frequencies"] = true.tolist()
                    entry["frequency_relative_error_mean"] = float(relative.abs().mean())
                    entry["frequency_relative_error_max"] = float(relative.abs().max())
                save_model(out / "model.pt", model, extra={"system": args.system, "beta": beta})
            metrics["models"][name] = entry
            curves[name] = np.asarray(result.losses)
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2))

    figures(out, args.system, system, models, curves, metrics, beta)


def figures(out: Path, name: str, system, models: dict, curves: dict, metrics: dict, beta: float) -> None:
    exact = metrics["exact_free_energy"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, losses in curves.items():
        window = max(1, len(losses) // 100)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(smooth)) + window, smooth - exact, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("F_var (minibatch) − F  [nats]")
    ax.set_title(f"{name}: training curves")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=120)
    plt.close(fig)

    model = models["canonflow"]
    learned = np.asarray(metrics["models"]["canonflow"]["frequencies"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, len(learned) + 1), learned, "o", label="canonflow (learned ω_k)")
    if "exact_frequencies" in metrics["models"]["canonflow"]:
        ax.plot(np.arange(1, len(learned) + 1), metrics["models"]["canonflow"]["exact_frequencies"], "-", label="exact")
    ax.set_xlabel("mode k (sorted)")
    ax.set_ylabel("ω_k")
    ax.set_title(f"{name}: latent frequency spectrum")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latent_spectrum.png", dpi=120)
    plt.close(fig)

    with torch.no_grad():
        drawn = model.sample(5000).numpy()
    target = None if name == "double_well" else system.sample_boltzmann(5000, beta).numpy()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    if name == "double_well":
        grid = np.linspace(-2.5, 2.5, 400)
        density = np.exp(-beta * (grid**4 / 4 - grid**2 / 2))
        density /= np.trapezoid(density, grid)
        axes[0].hist(drawn[:, 0], bins=80, density=True, alpha=0.6, label="canonflow")
        axes[0].plot(grid, density, "k-", label="exact")
        axes[0].set_xlabel("q")
        axes[0].legend()
        axes[1].hist2d(drawn[:, 0], drawn[:, 1], bins=60)
        axes[1].set_xlabel("q")
        axes[1].set_ylabel("p")
        axes[1].set_title("canonflow samples")
    else:
        i, j = (0, 1) if name == "ring2d" else (0, system.n - 1)
        for ax, data, title in ((axes[0], target, "exact Boltzmann"), (axes[1], drawn, "canonflow")):
            ax.scatter(data[:, i], data[:, j], s=1, alpha=0.3)
            ax.set_title(f"{title}: q_{i + 1} vs q_{j + 1}")
            ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
