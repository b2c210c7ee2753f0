"""Maximum-likelihood density estimation with a canonical flow on momentum-augmented data.

    PYTHONPATH=. python experiments/density.py --dataset digits --out experiments/results/density_digits
    PYTHONPATH=. python experiments/density.py --dataset ring2d --out experiments/results/density_ring2d

Configurations q (digits: scikit-learn's 8×8 images, 64 dims, dequantized with uniform noise, rescaled to
(α, 1−α) and logit-transformed, then standardized; ring2d: exact Boltzmann samples of Ring2D's positions) are
augmented with momenta p ~ N(0, I), so the canonical flow models a 2n-dimensional phase space. Reported
NLLs are of q alone: NLL(q, p) − NLL_gauss(p) averaged over momentum draws (an upper bound on NLL(q), see
canonflow.density) and the tighter importance-weighted estimate over K draws. For digits they are converted
to bits/dim of the dequantized pixel values (0..17) by adding the logit/standardization Jacobian.
Baselines: nflows RealNVP and MAF of about the same parameter count on q directly (not volume preserving).
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

import canonflow  # noqa: E402
from canonflow.checkpoint import save_model  # noqa: E402
from canonflow.density import PhaseSpaceFlow, fit_density, nll  # noqa: E402
from canonflow.distributions import PhaseSpaceNormal  # noqa: E402
from canonflow.systems import Ring2D  # noqa: E402
from canonflow.training import TrainConfig  # noqa: E402

ALPHA = 0.05  # logit margin: y = logit(α + (1 − 2α) v/17)
LEVELS = 17  # digits pixels take the values 0..16

SETTINGS = {
    "digits": dict(
        model=dict(blocks=6, hidden=256, linear="nak", householder=8, zero_center=True),
        baseline={"realnvp": dict(hidden=96, layers=8, blocks=1), "maf": dict(hidden=104, layers=5, blocks=1)},
        batch=256,
        lr=1e-3,
        steps=6000,
        quick_steps=200,
        time_limit=900,
    ),
    "ring2d": dict(
        model=dict(blocks=8, hidden=64, linear="nak", householder=2, full_linear=True, zero_center=True),
        baseline={"realnvp": dict(hidden=20, layers=6, blocks=1), "maf": dict(hidden=20, layers=5, blocks=1)},
        batch=512,
        lr=2e-3,
        steps=4000,
        quick_steps=200,
        time_limit=600,
    ),
}


def load_digits_split(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1797 digits as float64 pixel values 0..16, split 1297 train / 200 validation / 300 test."""
    from sklearn.datasets import load_digits  # optional dependency, shipped with its data

    pixels = torch.as_tensor(load_digits().data, dtype=torch.float64)
    order = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(seed))
    pixels = pixels[order]
    return pixels[:1297], pixels[1297:1497], pixels[1497:]


class LogitPreprocessing:
    """v = pixel + U(0,1) ∈ (0, 17) -> y = (logit(α + (1−2α) v/17) − μ)/σ, with log|dy/dv| per sample."""

    def __init__(self, train_pixels: torch.Tensor, seed: int) -> None:
        y = self._logit(self.dequantize(train_pixels, torch.Generator().manual_seed(seed)))
        self.mean, self.std = y.mean(0), y.std(0)

    @staticmethod
    def dequantize(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return pixels + torch.rand(pixels.shape, generator=generator, dtype=pixels.dtype)

    @staticmethod
    def _logit(v: torch.Tensor) -> torch.Tensor:
        s = ALPHA + (1 - 2 * ALPHA) * v / LEVELS
        return s.log() - (-s).log1p()

    def __call__(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = ALPHA + (1 - 2 * ALPHA) * v / LEVELS
        y = (self._logit(v) - self.mean) / self.std
        log_jacobian = (math.log((1 - 2 * ALPHA) / LEVELS) - s.log() - (-s).log1p() - self.std.log()).sum(-1)
        return y, log_jacobian


def baseline(kind: str, dim: int, hidden: int, layers: int, blocks: int) -> Flow:
    if kind == "realnvp":
        transform = SimpleRealNVP(dim, hidden, layers, blocks)._transform
    else:
        transform = MaskedAutoregressiveFlow(dim, hidden, layers, blocks)._transform
    return Flow(transform, PhaseSpaceNormal(dim // 2)).double()


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(SETTINGS), required=True)
    parser.add_argument("--quick", action="store_true", help="a few hundred steps (smoke test)")
    parser.add_argument("--out", default=None, help="output directory (default experiments/results/density_DATASET)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--momenta", type=int, default=64, help="momentum draws K for the evaluation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline-time-limit", type=float, default=300.0, help="seconds per baseline")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out or f"experiments/results/density_{args.dataset}")
    out.mkdir(parents=True, exist_ok=True)
    settings = SETTINGS[args.dataset]
    steps = args.steps or (settings["quick_steps"] if args.quick else settings["steps"])

    if args.dataset == "digits":
        train_px, valid_px, test_px = load_digits_split(args.seed)
        prep = LogitPreprocessing(train_px, args.seed)
        draws = 1 if args.quick else 4  # dequantization draws for training data (fresh noise per copy)
        train_q = prep(prep.dequantize(train_px.repeat(draws, 1), torch.Generator().manual_seed(args.seed + 1)))[0]
        valid_q = prep(prep.dequantize(valid_px, torch.Generator().manual_seed(args.seed + 2)))[0]
        test_q, test_log_jacobian = prep(prep.dequantize(test_px, torch.Generator().manual_seed(args.seed + 3)))
        exact_test_nll = None
    else:
        system = Ring2D()
        generator = torch.Generator().manual_seed(args.seed)
        train_q = system.sample_boltzmann(20_000, generator=generator)[:, :2]
        valid_q = system.sample_boltzmann(2_000, generator=generator)[:, :2]
        test_q = system.sample_boltzmann(10_000, generator=generator)[:, :2]
        test_log_jacobian = torch.zeros(len(test_q), dtype=torch.float64)
        # exact configurational density: e^{-U(q)} / Z_q with Z_q = Z / (2π) at β = 1
        log_z_q = -system.free_energy(1.0) - math.log(2 * math.pi)
        exact_test_nll = float((-system.log_density_q(test_q) + log_z_q).mean())
    dim = train_q.shape[1]
    n = dim  # the canonical flow's phase space is (q, p) with p augmented: 2n = 2·dim

    models = {"canonflow": PhaseSpaceFlow(n, **settings["model"]).double()}
    if not args.no_baselines:
        for kind, shape in settings["baseline"].items():
            models[kind] = baseline(kind, dim, **shape)

    metrics: dict = {
        "dataset": args.dataset,
        "dim": dim,
        "train": len(train_q),
        "validation": len(valid_q),
        "test": len(test_q),
        "steps": steps,
        "seed": args.seed,
        "torch_threads": args.threads,
        "exact_test_nll": exact_test_nll,
        "models": {},
    }
    curves = {}
    to_bits = 1.0 / (dim * math.log(2))
    with canonflow.validation(False):
        for name, model in models.items():
            config = TrainConfig(
                steps=steps,
                lr=settings["lr"],
                seed=args.seed,
                grad_clip=10.0,
                eval_every=max(1, steps // 20),
                patience=6,
                time_limit=settings["time_limit"] if name == "canonflow" else args.baseline_time_limit,
                description=f"{args.dataset}/{name}",
            )
            began = time.perf_counter()
            fit = fit_density(model, train_q, validation_data=valid_q, batch_size=settings["batch"], config=config)
            seconds = time.perf_counter() - began
            generator = torch.Generator().manual_seed(args.seed + 4)
            if name == "canonflow":
                bound = nll(model, test_q, num_momenta=args.momenta, generator=generator)
                weighted = nll(model, test_q, num_momenta=args.momenta, importance_weighted=True, generator=generator)
            else:
                bound = weighted = nll(model, test_q)
            entry = {
                "parameters": parameter_count(model),
                "train_seconds": seconds,
                "steps_run": fit.train.steps,
                "validation_nll": fit.validation_nll,
                "test_nll": float(bound.mean()),
                "test_nll_stderr": float(bound.std() / math.sqrt(len(bound))),
                "test_nll_importance_weighted": float(weighted.mean()),
            }
            if args.dataset == "digits":
                entry["test_bits_per_dim"] = float((bound - test_log_jacobian).mean()) * to_bits
                entry["test_bits_per_dim_importance_weighted"] = float((weighted - test_log_jacobian).mean()) * to_bits
            if name == "canonflow":
                save_model(out / "model.pt", model, extra={"dataset": args.dataset})
            metrics["models"][name] = entry
            curves[name] = (np.asarray(fit.train.losses), fit.train.validation)
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    figures(out, args.dataset, models, curves, test_q, n)


def figures(out: Path, dataset: str, models: dict, curves: dict, test_q: torch.Tensor, n: int) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (losses, validation) in curves.items():
        window = max(1, len(losses) // 100)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        (line,) = ax.plot(np.arange(len(smooth)) + window, smooth, label=f"{label} (train)", alpha=0.7)
        if validation:
            steps, values = zip(*validation, strict=True)
            ax.plot(steps, values, "o--", color=line.get_color(), label=f"{label} (validation)")
    ax.set_xlabel("step")
    ax.set_ylabel("NLL(q) [nats]")
    ax.set_title(f"{dataset}: training curves")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=120)
    plt.close(fig)

    with torch.no_grad():
        drawn = {name: model.sample(2000)[:, : test_q.shape[1]].numpy() for name, model in models.items()}
    if dataset == "ring2d":
        fig, axes = plt.subplots(1, len(drawn) + 1, figsize=(4 * (len(drawn) + 1), 4))
        for ax, (title, data) in zip(axes, [("data", test_q[:2000].numpy()), *drawn.items()], strict=True):
            ax.scatter(data[:, 0], data[:, 1], s=1, alpha=0.4)
            ax.set_title(title)
            ax.set_aspect("equal")
            ax.set_xlim(-3.5, 3.5)
            ax.set_ylim(-3.5, 3.5)
    else:
        fig, axes = plt.subplots(len(drawn) + 1, 8, figsize=(8, 1.1 * (len(drawn) + 1)))
        rows = [("data", test_q[:8].numpy()), *((k, v[:8]) for k, v in drawn.items())]
        for row, (title, data) in zip(axes, rows, strict=True):
            for ax, image in zip(row, data, strict=True):
                ax.imshow(image.reshape(8, 8), cmap="gray_r")
                ax.axis("off")
            row[0].set_title(title, fontsize=7, loc="left")
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
