"""``canonflow density``: maximum-likelihood density estimation with a canonical flow on momentum-augmented data.

Configurations ``q`` (``digits``: scikit-learn's 8×8 images, 64 dims, dequantized with uniform noise, rescaled
to ``(α, 1−α)`` and logit-transformed, then standardized; ``ring2d``: exact Boltzmann samples of Ring2D's
positions) are augmented with momenta ``p ~ N(0, I)``, so the canonical flow models a 2n-dimensional phase
space. Reported NLLs are of ``q`` alone: ``NLL(q, p) − NLL_gauss(p)`` averaged over momentum draws (an upper
bound on ``NLL(q)``, see :mod:`canonflow.density`) and the tighter importance-weighted estimate over ``momenta``
draws. For digits they are also given in bits/dim of the dequantized pixel values (0..17).

Results: ``dataset``, ``dim``, ``train``, ``validation``, ``test`` (sizes), ``exact_test_nll`` (ring2d) and
``models.canonflow``: ``parameters``, ``train_seconds``, ``steps_run``, ``loss_curve``, ``validation_curve``,
``validation_nll``, ``test_nll``, ``test_nll_stderr``, ``test_nll_importance_weighted`` (and for digits
``test_bits_per_dim``, ``test_bits_per_dim_importance_weighted``). Writes ``model.pt``, ``training.pt`` and
``figures/{training_curves,samples}.png``. ``experiments/density.py`` adds nflows baselines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from nflows.flows import Flow

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
from canonflow.density import DensityFit, PhaseSpaceFlow, fit_density, nll
from canonflow.distributed import DistributedContext
from canonflow.systems import Ring2D
from canonflow.training import TrainConfig

__all__ = ["COMMAND", "OPTIONS", "SETTINGS", "Dataset", "LogitPreprocessing", "load_dataset", "run", "test_entry"]

ALPHA = 0.05  # logit margin: y = logit(α + (1 − 2α) v/17)
LEVELS = 17  # digits pixels take the values 0..16

SETTINGS = {
    "digits": dict(
        model=dict(blocks=6, hidden=256, linear="nak", householder=8, zero_center=True),
        batch=256,
        lr=1e-3,
        steps=6000,
        quick_steps=100,
        time_limit=900,
    ),
    "ring2d": dict(
        model=dict(blocks=8, hidden=64, linear="nak", householder=2, full_linear=True, zero_center=True),
        batch=512,
        lr=2e-3,
        steps=4000,
        quick_steps=100,
        time_limit=600,
    ),
}
"""Per dataset: the canonical model, minibatch size, learning rate, steps (full and ``--quick``), time limit."""
OPTIONS = (
    Option("dataset", "ring2d", "data set (digits needs scikit-learn)", choices=sorted(SETTINGS)),
    Option("momenta", None, "momentum draws K of the test NLL", kind=int, default_text="64, 8 quick"),
    *TRAINING_OPTIONS,
    *COMMON_OPTIONS,
)


def load_digits_split(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1797 digits as float64 pixel values 0..16, split 1297 train / 200 validation / 300 test."""
    try:
        from sklearn.datasets import load_digits  # optional dependency, shipped with its data
    except ImportError as error:
        raise ValueError("the digits data set needs scikit-learn: pip install -e '.[experiments]'") from error

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
        """Pixels plus uniform noise in ``[0, 1)``."""
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


@dataclass
class Dataset:
    """Train/validation/test configurations ``(N, dim)`` (float64), the test set's log-Jacobian of the
    preprocessing (zeros for ring2d) and the exact test NLL where known."""

    train: torch.Tensor
    validation: torch.Tensor
    test: torch.Tensor
    test_log_jacobian: torch.Tensor
    exact_test_nll: float | None


def load_dataset(name: str, seed: int, quick: bool = False) -> Dataset:
    """The data set ``name`` drawn/split with ``seed`` (``quick``: smaller ring2d sets, one dequantization)."""
    if name == "digits":
        train_px, valid_px, test_px = load_digits_split(seed)
        prep = LogitPreprocessing(train_px, seed)
        draws = 1 if quick else 4  # dequantization draws for training data (fresh noise per copy)
        train = prep(prep.dequantize(train_px.repeat(draws, 1), torch.Generator().manual_seed(seed + 1)))[0]
        valid = prep(prep.dequantize(valid_px, torch.Generator().manual_seed(seed + 2)))[0]
        test, test_log_jacobian = prep(prep.dequantize(test_px, torch.Generator().manual_seed(seed + 3)))
        return Dataset(train, valid, test, test_log_jacobian, None)
    system = Ring2D()
    generator = torch.Generator().manual_seed(seed)
    sizes = (2_000, 500, 1_000) if quick else (20_000, 2_000, 10_000)
    train, valid, test = (system.sample_boltzmann(size, generator=generator)[:, :2] for size in sizes)
    # exact configurational density: e^{-U(q)} / Z_q with Z_q = Z / (2π) at β = 1
    log_z_q = -system.free_energy(1.0) - math.log(2 * math.pi)
    exact = float((-system.log_density_q(test) + log_z_q).mean())
    return Dataset(train, valid, test, torch.zeros(len(test), dtype=torch.float64), exact)


def test_entry(model: Flow, data: Dataset, dataset: str, momenta: int | None, seed: int) -> dict[str, float]:
    """Test NLLs of ``model`` (``momenta`` draws for a momentum-augmented canonical flow, ``None`` for a flow
    on ``q`` directly), in nats and for digits in bits/dim."""
    generator = torch.Generator().manual_seed(seed + 4)
    dtype = next(model.parameters()).dtype
    test = data.test.to(dtype)
    with canonflow.validation(False):
        if momenta is not None:
            bound = nll(model, test, num_momenta=momenta, generator=generator).double()
            weighted = nll(model, test, num_momenta=momenta, importance_weighted=True, generator=generator).double()
        else:
            bound = weighted = nll(model, test).double()
    entry = {
        "test_nll": float(bound.mean()),
        "test_nll_stderr": float(bound.std() / math.sqrt(len(bound))),
        "test_nll_importance_weighted": float(weighted.mean()),
    }
    if dataset == "digits":
        to_bits = 1.0 / (test.shape[1] * math.log(2))
        entry["test_bits_per_dim"] = float((bound - data.test_log_jacobian).mean()) * to_bits
        entry["test_bits_per_dim_importance_weighted"] = float((weighted - data.test_log_jacobian).mean()) * to_bits
    return entry


def fit_entry(model: Flow, fit: DensityFit) -> dict[str, Any]:
    """The training part of a results entry: size, time, steps, curves and validation NLL."""
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": fit.train.seconds,
        "steps_run": fit.train.steps,
        "loss_curve": loss_curve(fit.train.losses),
        "validation_curve": {
            "steps": [step for step, _ in fit.train.validation],
            "values": [value for _, value in fit.train.validation],
        },
        "validation_nll": fit.validation_nll,
    }


def steps(config: dict[str, Any]) -> int:
    """The optimizer steps of a run: ``config["steps"]``, else the preset's (``--quick`` or full)."""
    settings = SETTINGS[config["dataset"]]
    return config["steps"] or (settings["quick_steps"] if config["quick"] else settings["steps"])


def run(
    config: dict[str, Any],
    out: Path | None = None,
    *,
    progress: bool = True,
    resume: bool = False,
    distributed: DistributedContext | None = None,
) -> dict:
    """Fit the canonical flow to ``config["dataset"]``; write model and figures to ``out``; return the results
    of the module docstring."""
    config = complete(OPTIONS, config)
    name, seed = config["dataset"], config["seed"]
    settings = SETTINGS[name]
    momenta = config["momenta"] or (8 if config["quick"] else 64)
    data = load_dataset(name, seed, config["quick"])
    dim = data.train.shape[1]
    dtype, device = torch_dtype(config), run_device(config, distributed)
    torch.manual_seed(seed)
    model = PhaseSpaceFlow(dim, **settings["model"]).to(dtype=dtype, device=device)
    preset = {
        "steps": steps(config),
        "lr": settings["lr"],
        "grad_clip": 10.0,
        "eval_every": max(1, steps(config) // 20),
        "patience": 6,
        "time_limit": settings["time_limit"],
    }
    options = training_options(config, out, preset, description=f"{name}/canonflow", progress=progress, resume=resume)
    with canonflow.validation(False):
        fit = fit_density(
            model,
            data.train.to(dtype=dtype, device=device),
            validation_data=data.validation.to(dtype=dtype, device=device),
            batch_size=settings["batch"],
            config=TrainConfig(**options),
            distributed=distributed,
        )
    model = model.cpu()
    results = {
        "dataset": name,
        "dim": dim,
        "train": len(data.train),
        "validation": len(data.validation),
        "test": len(data.test),
        "momenta": momenta,
        "exact_test_nll": data.exact_test_nll,
        "models": {"canonflow": {**fit_entry(model, fit), **test_entry(model, data, name, momenta, seed)}},
    }
    if writes_outputs(out, distributed):
        save_model(out / "model.pt", model, extra={"command": "density", "dataset": name, "config": config})
        figures = figures_dir(out)
        plot_training_curves(results, figures / "training_curves.png")
        plot_samples({"canonflow": model}, data, name, figures / "samples.png")
    return results


def evaluate_checkpoint(model: torch.nn.Module, extra: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Test NLLs of a ``model.pt`` written by ``canonflow density`` (or the older script)."""
    trained = complete(OPTIONS, extra.get("config", {"dataset": extra["dataset"]}))
    momenta = 8 if config["quick"] else trained["momenta"] or 64
    data = load_dataset(trained["dataset"], trained["seed"], trained["quick"])
    return {
        "exact_test_nll": data.exact_test_nll,
        **test_entry(model, data, trained["dataset"], momenta, trained["seed"]),
    }


def plot_training_curves(results: dict[str, Any], path: Path) -> None:
    """Training (windowed) and validation NLL along training, for every model in ``results["models"]``."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, entry in results["models"].items():
        curve, validation = entry["loss_curve"], entry["validation_curve"]
        (line,) = axis.plot(curve["steps"], curve["values"], label=f"{label} (train)", alpha=0.7)
        if validation["steps"]:
            axis.plot(validation["steps"], validation["values"], "o--", color=line.get_color(), label=f"{label} (val.)")
    axis.set(xlabel="step", ylabel="NLL(q) [nats]", title=f"{results['dataset']}: training curves")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_samples(models: dict[str, Flow], data: Dataset, dataset: str, path: Path) -> None:
    """Test data next to samples of each model (ring2d: scatter plots; digits: 8 images per row)."""
    plt = pyplot()
    dim = data.test.shape[1]
    with torch.no_grad():
        drawn = {name: model.sample(2000)[:, :dim].double().numpy() for name, model in models.items()}
    if dataset == "ring2d":
        figure, axes = plt.subplots(1, len(drawn) + 1, figsize=(4 * (len(drawn) + 1), 4))
        for axis, (title, points) in zip(axes, [("data", data.test[:2000].numpy()), *drawn.items()], strict=True):
            axis.scatter(points[:, 0], points[:, 1], s=1, alpha=0.4)
            axis.set(title=title, xlim=(-3.5, 3.5), ylim=(-3.5, 3.5))
            axis.set_aspect("equal")
    else:
        figure, axes = plt.subplots(len(drawn) + 1, 8, figsize=(8, 1.1 * (len(drawn) + 1)))
        rows = [("data", data.test[:8].numpy()), *((k, v[:8]) for k, v in drawn.items())]
        for row, (title, images) in zip(axes, rows, strict=True):
            for axis, image in zip(row, images, strict=True):
                axis.imshow(image.reshape(8, 8), cmap="gray_r")
                axis.axis("off")
            row[0].set_title(title, fontsize=7, loc="left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


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


COMMAND = Command(
    name="density",
    help="maximum-likelihood density estimation on momentum-augmented data",
    description=__doc__,
    options=OPTIONS,
    run=run,
    report=report,
    distributed=True,
    evaluate_checkpoint=evaluate_checkpoint,
)
