"""The ``canonflow`` command line."""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Sequence

import torch
from nflows.flows import Flow
from tqdm.auto import tqdm

from canonflow import canonical_flow
from canonflow.distributions import PhaseSpaceNormal
from canonflow.testing import symplectic_defect

log = logging.getLogger("canonflow")


def _banana(num: int, generator: torch.Generator) -> torch.Tensor:
    """Exact samples of N(0, I) pushed through the canonical shear ``(q, p) -> (q, p + q² - 1)``."""
    q, p = torch.randn(2, num, generator=generator, dtype=torch.float64)
    return torch.stack([q, p + q**2 - 1.0], dim=1)


def demo(args: argparse.Namespace) -> int:
    """Fit a canonical flow to a banana density whose exact NLL is known, then check the trained flow."""
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    train, test = _banana(4096, generator), _banana(4096, generator)
    transform = canonical_flow(1, blocks=3, hidden=32).double()
    flow = Flow(transform, PhaseSpaceNormal(1)).double()
    optimizer = torch.optim.Adam(flow.parameters(), lr=5e-3)
    steps = 150 if args.quick else 1500
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="demo: banana density", disable=args.quiet or not sys.stderr.isatty())
    for _ in bar:
        batch = train[torch.randint(0, len(train), (256,), generator=generator)]
        loss = -flow.log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bar.set_postfix(nll=f"{loss.item():.4f}")
    flow.eval()
    with torch.no_grad():
        nll = -flow.log_prob(test).mean().item()
        latent, _ = transform(test)
        round_trip = (transform.inverse(latent)[0] - test).abs().max().item()
    exact = math.log(2 * math.pi) + 1.0  # E[-log N(z; 0, I)] in two dimensions
    defect = symplectic_defect(transform, test[:64]).max().item()
    print(f"trained {steps} steps in {time.perf_counter() - start:.1f} s")
    print(f"held-out NLL {nll:.4f} nats (exact density: {exact:.4f})")
    print(f"inverse round trip max error {round_trip:.2e}; symplectic defect max|JᵀΩJ - Ω| {defect:.2e}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="canonflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="train a small canonical flow and check it")
    demo_parser.add_argument("--quick", action="store_true", help="a few seconds of training (default: off)")
    demo_parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    demo_parser.set_defaults(run=demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
