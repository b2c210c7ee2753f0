"""Learn action-angle coordinates of an integrable system with a canonical flow: ``canonflow action-angle``.

    python experiments/action_angle.py --system kepler2d --out experiments/results/kepler2d

takes the flags of ``canonflow action-angle`` (see ``--help``; presets in ``canonflow/presets/action-angle.toml``)
and writes ``config.toml``, ``metrics.json`` (held-out action conservation, angle R², frequency error, angle
independence, training time, parameter count), ``model.pt`` (``canonflow.load``-able) and ``figures/``.
"""

from __future__ import annotations

import sys

from canonflow.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["action-angle", *sys.argv[1:]]))
