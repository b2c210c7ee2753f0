"""Rerun the statistical tests over many seeds and thread counts, and count their failures.

Every test marked ``statistical`` asserts estimates within ``randomness.Z_SCORE`` standard errors (a false-failure
budget of 1e-4 for the whole suite), or trains to a threshold. This script checks that design empirically: each
run shifts every test seed by ``CANONFLOW_TEST_SEED`` and sets ``OMP_NUM_THREADS``; a test that fails on any
(seed, threads) pair rests on luck. Usage (from the repository root)::

    python tests/seed_sweep.py --seeds 20 --threads 1 2 --out sweep.json

Runs with one thread use pytest-xdist (``--workers``, one thread each); runs with more threads use one process
(``-n 0``), so that torch really uses that many.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(offset: int, threads: int, workers: int, selection: list[str]) -> dict[str, str]:
    """Outcome (``passed``/``failed``/``skipped``) of every selected statistical test for one seed shift."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.xml"
        parallel = ["-n", str(workers) if threads == 1 else "0"]
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "statistical", *parallel]
        command += [f"--junitxml={report}", *selection]
        env = {**os.environ, "CANONFLOW_TEST_SEED": str(offset), "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if not report.is_file():
            raise RuntimeError(f"pytest wrote no report (exit {done.returncode}): {done.stderr[-2000:]}")
        outcomes = {}
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            kinds = {child.tag for child in case}
            outcomes[name] = "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
        return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seed shifts 0 .. SEEDS-1")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed shift")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="OMP_NUM_THREADS values")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers for one-thread runs")
    parser.add_argument("--out", type=Path, help="write the outcomes as JSON here")
    parser.add_argument("selection", nargs="*", default=["tests"], help="test paths or node ids (default: tests)")
    args = parser.parse_args()
    failures: dict[str, list[tuple[int, int]]] = defaultdict(list)
    runs = []
    for threads in args.threads:
        for offset in range(args.first_seed, args.first_seed + args.seeds):
            start = time.perf_counter()
            outcomes = run_once(offset, threads, args.workers, args.selection)
            seconds = time.perf_counter() - start
            failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
            for name in failed:
                failures[name].append((offset, threads))
            load = os.getloadavg()[0]
            runs.append(
                {
                    "seed": offset,
                    "threads": threads,
                    "tests": len(outcomes),
                    "failed": failed,
                    "seconds": round(seconds, 1),
                    "load": round(load, 2),
                }
            )
            print(
                f"seed {offset:3d} threads {threads}: {len(outcomes)} tests, {len(failed)} failed "
                f"({seconds:.0f} s, load {load:.2f}) {' '.join(failed)}",
                flush=True,
            )
    print(f"{len(runs)} runs; tests that failed at least once: {len(failures)}")
    for name, where in sorted(failures.items()):
        print(f"  {name}: {len(where)} of {len(runs)} runs, (seed, threads) = {where}")
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "failures": failures}, indent=1))


if __name__ == "__main__":
    main()
