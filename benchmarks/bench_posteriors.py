"""Samplers on posteriordb posteriors with reference draws, on the raw parametrizations as posted.

Each posterior (``benchmarks/posteriors/<name>/``: the data, the Stan program and a summary of posteriordb's
reference draws; see the README there) is written in torch in its natural parameters, pulled back to the
unconstrained space with ``canonflow.sampling.ParameterSpace`` (Stan's transforms), and sampled without hand
preconditioning by

- ``hmc``: HMC, 10 leapfrog steps (untuned), the shared Stan-style warm-up, the library's default metric
  (``metric="auto"``: dense for ``d ≤ 50``, so dense on all six);
- ``nuts``: NUTS, the library's defaults (Stan's, but the ``"auto"`` metric);
- ``hmc_diag``, ``nuts_diag``: the same with a diagonal metric (Stan's default ``diag_e``);
- ``hmc_dense``, ``nuts_dense``: the same with a dense metric;
- ``neutra_nuts`` and ``flow_mcmc``: a ``FlowSampler`` trained by ``train_sampler`` (preconditioned by default:
  warm-up moments), then NUTS in its latent space and independence Metropolis–Hastings with it.

For every reference quantity (Stan's parameters, transformed ones included), the mean and sd are compared with the
reference in Monte Carlo standard errors (``z = |x̂ − x_ref| / √(MCSE² + se_ref²)``, ``se_ref`` the reference
draws' own error, treating its 10,000 thinned draws as independent), with R̂; efficiency is the minimum bulk ESS
over quantities per gradient/potential evaluation and per second, sampling alone and with warm-up, training and
preconditioning included. Results: ``--out DIR/metrics.json``.

    flock /tmp/canonflow-cpu.lock python benchmarks/bench_posteriors.py --posterior kidiq-kidscore_momiq \\
        --samplers nuts hmc --out experiments/results/posteriors/kidiq-kidscore_momiq
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from canonflow.sampling import (
    FlowSampler,
    ParameterSpace,
    Positive,
    Real,
    SamplingResult,
    ess_bulk,
    fit_preconditioner,
    flow_mcmc,
    hmc,
    initial_points,
    mcse_mean,
    mcse_sd,
    neutra_nuts,
    nuts,
    rhat,
    train_sampler,
)
from canonflow.training import TrainConfig

HERE = Path(__file__).resolve().parent / "posteriors"
SAMPLERS = ("hmc", "nuts", "hmc_diag", "nuts_diag", "hmc_dense", "nuts_dense", "neutra_nuts", "flow_mcmc")
METRIC_OF = {"": "auto", "diag": "diag", "dense": "dense"}
"""The ``metric`` of ``hmc`` and ``nuts`` by sampler-name suffix."""

Model = tuple[ParameterSpace, Callable[[dict[str, torch.Tensor]], torch.Tensor], Callable[..., dict[str, torch.Tensor]]]


def _data(name: str) -> dict:
    return json.loads((HERE / name / "data.json").read_text())


def _vector(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _regression(x: torch.Tensor, y: torch.Tensor, sigma_prior: float | None) -> Model:
    """``y ~ normal(β₁ + β₂ x, σ)``, flat ``β``, ``σ ~ cauchy(0, sigma_prior)`` (flat if ``None``), ``σ > 0``."""
    space = ParameterSpace({"beta": (Real(), (2,)), "sigma": (Positive(), ())})

    def log_density(theta: dict[str, torch.Tensor]) -> torch.Tensor:
        beta, sigma = theta["beta"], theta["sigma"]
        residual = y - beta[:, :1] - beta[:, 1:] * x
        out = -y.numel() * torch.log(sigma) - 0.5 * (residual**2).sum(-1) / sigma**2
        if sigma_prior is not None:
            out = out - torch.log1p((sigma / sigma_prior) ** 2)
        return out

    def quantities(theta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"beta[1]": theta["beta"][..., 0], "beta[2]": theta["beta"][..., 1], "sigma": theta["sigma"]}

    return space, log_density, quantities


def kidiq(predictor: str) -> Callable[[], Model]:
    def build() -> Model:
        data = _data(f"kidiq-kidscore_{predictor.replace('mom_', 'mom')}")
        return _regression(_vector(data[predictor]), _vector(data["kid_score"]), 2.5)

    return build


def earnings() -> Model:
    data = _data("earnings-earn_height")
    return _regression(_vector(data["height"]), _vector(data["earn"]), None)


def mesquite() -> Model:
    data = _data("mesquite-logmesquite_logvolume")
    volume = torch.log(_vector(data["diam1"]) * _vector(data["diam2"]) * _vector(data["canopy_height"]))
    return _regression(volume, torch.log(_vector(data["weight"])), None)


def eight_schools() -> Model:
    data = _data("eight_schools-eight_schools_noncentered")
    y, sigma = _vector(data["y"]), _vector(data["sigma"])
    space = ParameterSpace({"theta_trans": (Real(), (8,)), "mu": (Real(), ()), "tau": (Positive(), ())})

    def log_density(theta: dict[str, torch.Tensor]) -> torch.Tensor:
        z, mu, tau = theta["theta_trans"], theta["mu"], theta["tau"]
        effect = z * tau[:, None] + mu[:, None]
        likelihood = -0.5 * (((y - effect) / sigma) ** 2).sum(-1)
        return -0.5 * (z**2).sum(-1) + likelihood - mu**2 / 50 - torch.log1p((tau / 5) ** 2)

    def quantities(theta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        effect = theta["theta_trans"] * theta["tau"][..., None] + theta["mu"][..., None]
        out = {f"theta[{j + 1}]": effect[..., j] for j in range(8)}
        return out | {"mu": theta["mu"], "tau": theta["tau"]}

    return space, log_density, quantities


def gp_regr() -> Model:
    data = _data("gp_pois_regr-gp_regr")
    x, y = _vector(data["x"]), _vector(data["y"])
    space = ParameterSpace({"rho": (Positive(), ()), "alpha": (Positive(), ()), "sigma": (Positive(), ())})
    squared = (x[:, None] - x[None, :]) ** 2
    eye = torch.eye(x.numel(), dtype=torch.float64)

    def log_density(theta: dict[str, torch.Tensor]) -> torch.Tensor:
        rho, alpha, sigma = theta["rho"], theta["alpha"], theta["sigma"]
        cov = alpha[:, None, None] ** 2 * torch.exp(-squared / (2 * rho[:, None, None] ** 2))
        cov = cov + sigma[:, None, None] * eye  # Stan's program adds σ (not σ²) to the diagonal
        chol, info = torch.linalg.cholesky_ex(cov)
        solved = torch.linalg.solve_triangular(chol, y.expand(rho.shape[0], -1)[..., None], upper=False)[..., 0]
        log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        likelihood = -0.5 * (solved**2).sum(-1) - log_det
        prior = 24 * torch.log(rho) - 4 * rho - alpha**2 / 8 - sigma**2 / 2
        out = likelihood + prior
        return torch.where(info == 0, out, torch.full_like(out, -math.inf))

    def quantities(theta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return dict(theta)

    return space, log_density, quantities


POSTERIORS: dict[str, Callable[[], Model]] = {
    "eight_schools-eight_schools_noncentered": eight_schools,
    "kidiq-kidscore_momiq": kidiq("mom_iq"),
    "kidiq-kidscore_momhs": kidiq("mom_hs"),
    "mesquite-logmesquite_logvolume": mesquite,
    "gp_pois_regr-gp_regr": gp_regr,
    "earnings-earn_height": earnings,
}


def check(result: SamplingResult, space: ParameterSpace, quantities: Callable, reference: dict) -> dict:
    """Means and sds against the reference in MCSE, R̂, ESS of every reference quantity."""
    values = quantities(space.constrain(result.samples.detach()))
    rows, worst_z, ess_min, rhat_max = {}, 0.0, math.inf, 0.0
    for name, ref in reference["parameters"].items():
        draws = values[name].double().numpy()
        flat = draws.ravel()
        se_ref_mean = ref["sd"] / math.sqrt(reference["ndraws"])
        se_ref_sd = ref["sd"] / math.sqrt(2 * reference["ndraws"])
        z_mean = abs(flat.mean() - ref["mean"]) / math.hypot(float(mcse_mean(draws)), se_ref_mean)
        z_sd = abs(flat.std(ddof=1) - ref["sd"]) / math.hypot(float(mcse_sd(draws)), se_ref_sd)
        row = {"mean": float(flat.mean()), "sd": float(flat.std(ddof=1)), "ref_mean": ref["mean"], "ref_sd": ref["sd"]}
        row |= {"z_mean": z_mean, "z_sd": z_sd, "ess_bulk": float(ess_bulk(draws)), "rhat": float(rhat(draws))}
        rows[name] = row
        worst_z = max(worst_z, z_mean, z_sd)
        ess_min = min(ess_min, row["ess_bulk"])
        rhat_max = max(rhat_max, row["rhat"])
    return {"quantities": rows, "max_z": worst_z, "ess_bulk_min": ess_min, "rhat_max": rhat_max}


def efficiency(result: SamplingResult, ess: float, extra_evaluations: int = 0, extra_seconds: float = 0.0) -> dict:
    sampling_evals = result.gradient_evaluations + result.potential_evaluations
    warmup_evals = result.warmup_gradient_evaluations + result.warmup_potential_evaluations
    total_evals = sampling_evals + warmup_evals + extra_evaluations
    total_seconds = result.seconds + result.warmup_seconds + extra_seconds
    return {
        "gradient_evaluations": result.gradient_evaluations,
        "potential_evaluations": result.potential_evaluations,
        "warmup_evaluations": warmup_evals,
        "training_evaluations": extra_evaluations,
        "ess_per_evaluation": ess / sampling_evals,
        "ess_per_evaluation_all_included": ess / total_evals,
        "sampling_seconds": result.seconds,
        "ess_per_second": ess / result.seconds,
        "ess_per_second_all_included": ess / total_seconds,
        "divergences": result.num_divergent,
        "warmup_divergences": result.warmup_divergences,
        "stuck_chains": result.extra.get("stuck_chains", []),
        "acceptance": result.acceptance_rate,
        "step_size": result.step_size,
        "mean_tree_depth": float(result.extra["tree_depth"].float().mean()) if "tree_depth" in result.extra else None,
    }


def run(name: str, samplers: list[str], args: argparse.Namespace) -> dict:
    space, log_density, quantities = POSTERIORS[name]()
    reference = json.loads((HERE / name / "reference.json").read_text())
    potential = space.potential(log_density)
    out: dict = {"posterior": name, "dim": space.dim, "settings": vars(args) | {"samplers": samplers}}
    generator = torch.Generator().manual_seed(args.seed)
    x0 = initial_points(potential, space.dim, args.chains, generator=generator)
    for sampler in samplers:
        if sampler not in ("neutra_nuts", "flow_mcmc"):
            began = time.perf_counter()
            kind, _, suffix = sampler.partition("_")
            options = {"warmup": args.warmup, "metric": METRIC_OF[suffix], "generator": generator}
            if kind == "hmc":
                result = hmc(potential, x0, args.draws, num_steps=10, **options)
            else:
                result = nuts(potential, x0, args.draws, **options)
            checked = check(result, space, quantities, reference)
            out[sampler] = checked | efficiency(result, checked["ess_bulk_min"])
            out[sampler]["wall_seconds"] = time.perf_counter() - began
            continue
        model, training = train_flow(potential, space.dim, args)
        began = time.perf_counter()
        if sampler == "neutra_nuts":
            result = neutra_nuts(model, potential, args.draws, args.chains, warmup=args.warmup, generator=generator)
        else:
            result = flow_mcmc(model, potential, args.flow_draws, args.chains, generator=generator)
        checked = check(result, space, quantities, reference)
        out[sampler] = checked | efficiency(
            result, checked["ess_bulk_min"], training["evaluations"], training["seconds"]
        )
        out[sampler] |= {"training": training, "wall_seconds": time.perf_counter() - began}
    return out


_TRAINED: dict = {}


def train_flow(potential: Callable, dim: int, args: argparse.Namespace) -> tuple[FlowSampler, dict]:
    """A preconditioned canonical-flow sampler trained by reverse KL (cached across the two flow samplers)."""
    if "model" in _TRAINED:
        return _TRAINED["model"], _TRAINED["info"]
    torch.manual_seed(args.seed)
    began = time.perf_counter()
    fit = fit_preconditioner(potential, dim, "moments", generator=torch.Generator().manual_seed(args.seed + 1))
    model = FlowSampler.canonical(dim, blocks=args.blocks, hidden=args.hidden).double()
    config = TrainConfig(steps=args.train_steps, lr=args.lr, progress=False, seed=args.seed, grad_clip=10.0)
    result = train_sampler(model, potential, config, batch_size=args.batch, precondition=fit)
    info = {
        "seconds": time.perf_counter() - began,
        "preconditioner": fit.method,
        "preconditioner_evaluations": fit.gradient_evaluations + fit.potential_evaluations,
        "steps": args.train_steps,
        "evaluations": fit.gradient_evaluations + fit.potential_evaluations + args.train_steps * args.batch,
        "best_validation": result.best_validation,
    }
    _TRAINED["model"], _TRAINED["info"] = model, info
    return model, info


def summarize(root: Path) -> str:
    """A markdown table of every ``root/<posterior>/metrics.json``: correctness and ESS per evaluation, with each
    sampler's ratio to NUTS (the library's default metric) and to NUTS with Stan's diagonal metric."""
    lines = [
        "| posterior | sampler | max z (mean, sd) | R̂ max | min bulk ESS | ESS/eval | × NUTS | × NUTS diag | "
        "ESS/eval incl. warm-up/training | ESS/s | ESS/s incl. | divergences |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(root.glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        bases = [metrics.get(name, {}).get("ess_per_evaluation") for name in ("nuts", "nuts_diag")]
        for sampler in SAMPLERS:
            if sampler not in metrics:
                continue
            m = metrics[sampler]
            ratios = " | ".join(f"{m['ess_per_evaluation'] / base:.1f}" if base else "–" for base in bases)
            lines.append(
                f"| {metrics['posterior']} | {sampler} | {m['max_z']:.2f} | {m['rhat_max']:.3f} | "
                f"{m['ess_bulk_min']:.0f} | {m['ess_per_evaluation']:.4f} | {ratios} | "
                f"{m['ess_per_evaluation_all_included']:.4f} | {m['ess_per_second']:.0f} | "
                f"{m['ess_per_second_all_included']:.0f} | {m['divergences']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if argv is None and len(os.sys.argv) == 3 and os.sys.argv[1] == "--summarize":
        print(summarize(Path(os.sys.argv[2])))
        return
    parser.add_argument("--posterior", choices=sorted(POSTERIORS), required=True)
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    parser.add_argument("--out", required=True, help="directory; metrics.json is merged per sampler")
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--flow-draws", type=int, default=2000)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    metrics = run(args.posterior, args.samplers, args)
    path = out / "metrics.json"
    merged = json.loads(path.read_text()) if path.is_file() else {}
    for sampler in args.samplers:  # each sampler's entry records the settings it ran with
        metrics[sampler]["settings"] = {key: value for key, value in vars(args).items() if key != "out"}
    merged |= metrics
    merged["load_average"] = os.getloadavg()
    merged.setdefault("runs", []).append({"samplers": args.samplers, "seconds": time.perf_counter() - began})
    path.write_text(json.dumps(merged, indent=1, default=float))
    for sampler in args.samplers:
        m = metrics[sampler]
        print(
            f"{args.posterior} {sampler}: max z {m['max_z']:.2f}, R̂ {m['rhat_max']:.3f}, ESS {m['ess_bulk_min']:.0f}, "
            f"ESS/eval {m['ess_per_evaluation']:.4f} (all incl. {m['ess_per_evaluation_all_included']:.4f}), "
            f"ESS/s {m['ess_per_second']:.1f} (all incl. {m['ess_per_second_all_included']:.1f})"
        )


if __name__ == "__main__":
    main()
