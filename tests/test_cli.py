"""The command line: the quick demo runs end to end; help lists the subcommands."""

from __future__ import annotations

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "canonflow", *args], capture_output=True, text=True, timeout=300)


def test_quick_demo_trains_and_checks_the_flow() -> None:
    done = _run("demo", "--quick", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "held-out NLL" in done.stdout and "symplectic defect" in done.stdout


def test_help_lists_subcommands_and_choices() -> None:
    done = _run("--help")
    assert done.returncode == 0 and "demo" in done.stdout and "action-angle" in done.stdout
    done = _run("action-angle", "--help")
    assert done.returncode == 0 and "kepler2d" in done.stdout


def test_unknown_system_lists_the_choices() -> None:
    done = _run("action-angle", "--system", "saturn")
    assert done.returncode != 0 and "kepler2d" in done.stderr
