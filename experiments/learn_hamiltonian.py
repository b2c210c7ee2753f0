"""Learn a Hamiltonian from noisy trajectories and compare it with the truth (issue 7): ``canonflow
learn-hamiltonian``.

Usage: ``python experiments/learn_hamiltonian.py --system double_well --mode implicit_midpoint --out DIR
[--quick] [--seed 0] [--no-adjoint]`` (the flags of ``canonflow learn-hamiltonian``; protocols in
``canonflow/presets/learn-hamiltonian.toml``). Writes ``config.toml``, ``metrics.json``, ``model.pt`` and ``figures/``.
"""

from __future__ import annotations

import sys

from canonflow.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["learn-hamiltonian", *sys.argv[1:]]))
