"""Toda loop family (issue #4): held-out metrics of the Birkhoff-normalized chart, with no training.

    PYTHONPATH=. python experiments/toda_loops.py --order 5 --num-test 128

Held-out orbits: ``toda_loop_orbits`` (loops with ``L = I₊ − I₋ > 0`` on ``t ∈ [0, 60]``) drawn with seed 1000 (the
CLI's held-out seed offset), integrated on ``t ∈ [0, 15]`` at 100 points, as the ``toda3_loops`` preset. Reports the
metrics of ``evaluate`` plus the winding ratio (turns of plane − over turns of plane +) and the CPU seconds of
building the chart (``time.process_time``, one thread).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from canonflow.action_angle import ActionAngleFlow, birkhoff_chart, evaluate, normal_mode_chart, unwrap
from canonflow.data import trajectories
from canonflow.presets import load_preset
from canonflow.presets.builders import build_system, initial_states

PRESET = load_preset("action-angle", "toda3_loops").settings()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--order", type=int, default=5, help="normalize to this degree (0: plain normal modes)")
    parser.add_argument("--num-test", type=int, default=PRESET["num_test"])
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--t-end", type=float, default=PRESET["t_end"])
    parser.add_argument("--num-times", type=int, default=PRESET["num_times"])
    parser.add_argument("--save", default=None, help="write the chart-only model here (canonflow.load)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    system = build_system(PRESET["system"], PRESET["centre_of_mass"])
    began = time.process_time()
    if args.order:
        spec = birkhoff_chart(system, [0.0] * 4, circular=[(0, 1)], order=args.order)
    else:
        spec = normal_mode_chart(system, [0.0] * 4, circular=[(0, 1)])
    model = ActionAngleFlow(2, chart=spec, blocks=0, householder=0)
    build = time.process_time() - began
    initial = initial_states(PRESET["initial"], system, args.num_test, torch.Generator().manual_seed(args.seed))
    test = trajectories(system, args.num_test, (args.t_end, args.num_times), initial=initial)
    metrics = evaluate(model, test.states, test.times, system.hamiltonian)
    with torch.no_grad():
        angles = unwrap(model.to_action_angle(test.states)[1], dim=1)
    turns = (angles[:, -1] - angles[:, 0]) / (2 * math.pi)
    ratio = turns[:, 1] / turns[:, 0]
    levels = torch.tensor([0.0, 0.5, 1.0], dtype=ratio.dtype)
    energy = system.hamiltonian(initial) - 3.0
    metrics.update(
        winding_ratio_min_median_max=torch.quantile(ratio, levels).tolist(),
        turns_median=turns.median(0).values.tolist(),
        energy_above_minimum_min_median_max=torch.quantile(energy, levels).tolist(),
        chart_cpu_seconds=build,
        args=vars(args),
    )
    print(json.dumps(metrics, indent=1))
    if args.save:
        model.save(args.save)


if __name__ == "__main__":
    main()
