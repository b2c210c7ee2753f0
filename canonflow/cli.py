"""The ``canonflow`` command line."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence

import torch
from nflows.flows import Flow

from canonflow import canonical_flow
from canonflow.action_angle import BENCHMARKS, run_benchmark
from canonflow.distributions import PhaseSpaceNormal
from canonflow.testing import symplectic_defect
from canonflow.training import TrainConfig, train

log = logging.getLogger("canonflow")


def _banana(num: int, generator: torch.Generator) -> torch.Tensor:
    """Exact samples of N(0, I) pushed through the canonical shear ``(q, p) -> (q, p + q² - 1)``."""
    q, p = torch.randn(2, num, generator=generator, dtype=torch.float64)
    return torch.stack([q, p + q**2 - 1.0], dim=1)


def demo(args: argparse.Namespace) -> int:
    """Fit a canonical flow to a banana density whose exact NLL is known, then check the trained flow."""
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    data, test = _banana(8192, generator), _banana(4096, generator)
    transform = canonical_flow(1, blocks=2, hidden=64, activation="softplus").double()
    flow = Flow(transform, PhaseSpaceNormal(1)).double()

    def loss_fn(batch_generator: torch.Generator) -> torch.Tensor:
        return -flow.log_prob(data[torch.randint(0, len(data), (256,), generator=batch_generator)]).mean()

    config = TrainConfig(
        steps=150 if args.quick else 1500, lr=1e-2, seed=args.seed, progress=not args.quiet, description="demo"
    )
    result = train(flow, loss_fn, config)
    with torch.no_grad():
        nll = -flow.log_prob(test).mean().item()
        latent, _ = transform(test)
        round_trip = (transform.inverse(latent)[0] - test).abs().max().item()
    exact = math.log(2 * math.pi) + 1.0  # E[-log N(z; 0, I)] in two dimensions
    defect = symplectic_defect(transform, test[:64]).max().item()
    print(f"banana density: trained {result.steps} steps in {result.seconds:.1f} s")
    print(f"held-out NLL {nll:.4f} nats (exact density: {exact:.4f})")
    print(f"inverse round trip max error {round_trip:.2e}; symplectic defect max|JᵀΩJ - Ω| {defect:.2e}")
    return 0


def action_angle(args: argparse.Namespace) -> int:
    """Learn action-angle coordinates of one of the benchmark systems and print the held-out metrics."""
    overrides = {key: value for key, value in (("steps", args.steps), ("time_limit", args.time_limit)) if value}
    metrics = run_benchmark(
        args.system,
        args.out,
        quick=args.quick,
        seed=args.seed,
        progress=not args.quiet,
        resume=args.resume,
        overrides=overrides,
    )
    print(
        f"{args.system}: {metrics['training_steps']} steps in {metrics['training_seconds']:.0f} s, "
        f"{metrics['parameters']} parameters"
    )
    print("held-out metrics per latent degree of freedom:")
    print("  action conservation  median std_t(I)/mean_t(I): " + _numbers(metrics["action_conservation"]))
    print("  angle linearity      median R² of φ(t):         " + _numbers(metrics["angle_r2"], "{:.6f}"))
    print("  frequency error      |dφ/dt| vs m·ω:            " + _numbers(metrics["frequency_error"]))
    print(f"  winding numbers m:   {metrics['frequency_matched']}")
    print(f"  angle independence   median std_φ(H)/|H|:      {metrics['angle_independence']:.2e}")
    if args.out:
        print(f"wrote metrics.json, model.pt and figures to {args.out}")
    return 0


def _numbers(values: Sequence[float], pattern: str = "{:.2e}") -> str:
    return ", ".join(pattern.format(v) for v in values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="canonflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="train a small canonical flow and check it")
    demo_parser.add_argument("--quick", action="store_true", help="a few seconds of training (default: off)")
    demo_parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    demo_parser.set_defaults(run=demo)
    aa_parser = commands.add_parser("action-angle", help="learn action-angle coordinates of an integrable system")
    aa_parser.add_argument("--system", required=True, choices=sorted(BENCHMARKS), help="benchmark system")
    aa_parser.add_argument("--out", help="directory for metrics.json, model.pt and figures (default: none)")
    aa_parser.add_argument("--quick", action="store_true", help="a short run (default: off)")
    aa_parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    aa_parser.add_argument("--steps", type=int, help="override the number of optimizer steps")
    aa_parser.add_argument("--time-limit", type=float, help="override the training time limit in seconds")
    aa_parser.add_argument("--resume", action="store_true", help="continue from OUT/training.pt")
    aa_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    aa_parser.set_defaults(run=action_angle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
