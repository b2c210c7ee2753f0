"""Print the markdown results table of sampling runs (``canonflow sample --out DIR``) from their metrics.json.

PYTHONPATH=. python experiments/sampling_table.py experiments/results/sampling_*
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    print(
        "| target | sampler | min bulk ESS | ESS/eval | × HMC | ESS/s | acc. | div. | R̂ max | mean err (s.e.) "
        "| var err (s.e.) | left-mode frac. |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for folder in sys.argv[1:]:
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
        report = metrics.get("results", metrics)  # runs before the canonflow command line wrote them flat
        for name, s in report["samplers"].items():
            mode = f"{s['left_mode_fraction']:.3f} ± {s['left_mode_se']:.3f}" if "left_mode_fraction" in s else "–"
            print(
                f"| {report['target']} | {name} | {s['ess_bulk_min']:.0f} | {s['ess_per_evaluation']:.2e} "
                f"| {s['ess_per_evaluation_vs_hmc']:.1f} | {s['ess_per_second']:.0f} | {s['acceptance_rate']:.2f} "
                f"| {s['divergences']} | {s['rhat_max']:.3f} | {s['max_mean_error_in_se']:.1f} "
                f"| {s['max_variance_error_in_se']:.1f} | {mode} |"
            )
        if "exact_iid_reference" in report:
            s = report["exact_iid_reference"]
            print(
                f"| {report['target']} | *exact i.i.d. (same size)* | | | | | | | | {s['max_mean_error_in_se']:.1f} "
                f"| {s['max_variance_error_in_se']:.1f} | |"
            )


if __name__ == "__main__":
    main()
