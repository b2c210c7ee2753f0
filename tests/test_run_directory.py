"""The run directory (``canonflow/run_directory.py``) and the command line's use of it: a refused run leaves the
directory as it was, a resume must ask for the run it resumes, a busy directory is refused, a fresh run does
not overwrite another without ``--overwrite``, and a run killed at any phase can be resumed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from canonflow.checkpoint import read_checkpoint
from canonflow.cli import main
from canonflow.run_directory import LOCK_FILE, Run, RunDirectoryError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("restore_threads")
BANANA = ["demo", "--example", "banana", "--quiet", "--checkpoint-every", "2"]


def _snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with a hash of its bytes (``{}`` when it does not exist)."""
    if not directory.exists():
        return {}
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _write_lock(directory: Path, pid: int, host: str | None = None) -> None:
    owner = {"pid": pid, "host": host or socket.gethostname(), "started_at": "then", "command": "demo"}
    (directory / LOCK_FILE).write_text(json.dumps(owner))


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-step banana run, made once."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*BANANA, "--steps", "4", "--out", str(out)]) == 0
    return out


@pytest.fixture
def banana_run(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of ``finished_run`` in ``tmp_path / "run"``."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


# ---------------------------------------------------------------------------------------------- Run.claim
def test_claim_locks_and_release_unlocks(tmp_path: Path) -> None:
    run = Run(tmp_path / "new")
    run.claim("demo", {"seed": 0})
    owner = json.loads((tmp_path / "new" / LOCK_FILE).read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname() and owner["command"] == "demo"
    with pytest.raises(RunDirectoryError, match=f"in use by demo \\(process {os.getpid()}"):
        Run(tmp_path / "new").claim("demo", {"seed": 0})
    run.release()
    assert not (tmp_path / "new" / LOCK_FILE).exists()


def test_a_lock_of_another_host_is_respected_and_a_stale_one_is_reported_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_lock(tmp_path, pid=1, host="elsewhere.example")
    with pytest.raises(RunDirectoryError, match="on elsewhere.example"):
        Run(tmp_path, overwrite=True).claim("demo", {})
    _write_lock(tmp_path, pid=_dead_pid())
    run = Run(tmp_path, overwrite=True)
    with caplog.at_level(logging.WARNING, logger="canonflow.run_directory"):
        run.claim("demo", {})
    assert "stale lock" in caplog.text
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    run.release()


def test_a_refused_claim_leaves_no_trace(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    out.mkdir(parents=True)
    (out / "model.pt").write_bytes(b"x")
    before = _snapshot(tmp_path)
    with pytest.raises(RunDirectoryError, match="is not empty \\(model.pt\\)"):
        Run(out).claim("demo", {})
    assert _snapshot(tmp_path) == before and not (out / LOCK_FILE).exists()
    (out / "training.pt").write_bytes(b"x")
    before = _snapshot(tmp_path)
    with pytest.raises(RunDirectoryError, match="holds a training state but no config.toml"):
        Run(out, resume=True).claim("demo", {})
    (out / "config.toml").write_text("seed = 1\n")
    before = _snapshot(tmp_path)
    with pytest.raises(RunDirectoryError, match="--resume asks for another run .*seed: stored 1, requested 2"):
        Run(out, resume=True).claim("demo", {"seed": 2})
    assert _snapshot(tmp_path) == before and not (out / LOCK_FILE).exists()


def test_overwrite_deletes_the_previous_run_s_files_and_only_those(tmp_path: Path) -> None:
    for name in ("config.toml", "metrics.json", "model.pt", "leapfrog.pt", "canonical_training.pt", "notes.txt"):
        (tmp_path / name).write_text("old")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "samples.png").write_text("old")
    run = Run(tmp_path, overwrite=True)
    run.claim("sample", {})
    assert sorted(path.name for path in tmp_path.iterdir()) == [LOCK_FILE, "notes.txt"]
    run.release()


def test_resume_compares_every_key_but_those_that_may_change(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("system = 'spring'\nbeta = 1.0\nsteps = 100\ndtype = 'float64'\n")
    run = Run(tmp_path, resume=True)
    run.claim("x", {"system": "spring", "beta": 1.0, "steps": 500, "time_limit": None, "dtype": "float64"}, {"steps"})
    run.release()
    requested = {"system": "pendulum", "beta": 2.0, "steps": 100, "dtype": "float32"}
    with pytest.raises(RunDirectoryError) as refused:
        Run(tmp_path, resume=True).claim("x", requested, {"steps"})
    message = str(refused.value)
    assert "\n" not in message
    for part in ("beta: stored 1.0, requested 2.0", "dtype: stored 'float64', requested 'float32'",
                 "system: stored 'spring', requested 'pendulum'"):  # fmt: skip
        assert part in message
    assert "steps" not in message


def test_run_arguments_are_checked() -> None:
    with pytest.raises(RunDirectoryError, match="empty path"):
        Run("")
    with pytest.raises(RunDirectoryError, match="exclude each other"):
        Run("somewhere", resume=True, overwrite=True)


def test_a_sampler_s_training_states_count_as_a_training_state(tmp_path: Path) -> None:
    assert not Run(tmp_path).has_training_state()
    (tmp_path / "canonical_training.pt").write_bytes(b"")
    assert Run(tmp_path).has_training_state()


# ---------------------------------------------------------------------------------------------- the command line
@pytest.mark.parametrize(
    "change, key",
    [(["--hidden", "8"], "hidden"), (["--dtype", "float32"], "dtype"), (["--lr", "0.5"], "lr"),
     (["--example", "kepler"], "example"), (["--seed", "3"], "seed")],
)  # fmt: skip
def test_a_resume_with_another_setup_is_refused_and_changes_nothing(
    banana_run: Path, change: list[str], key: str, capsys: pytest.CaptureFixture
) -> None:
    before = _snapshot(banana_run)
    assert main([*BANANA, "--out", str(banana_run), "--resume", *change]) == 2
    error = capsys.readouterr().err
    assert f"{key}: stored" in error and len(error.strip().splitlines()) == 1, error
    assert _snapshot(banana_run) == before


def test_a_resume_may_change_the_budget(banana_run: Path) -> None:
    assert main([*BANANA, "--out", str(banana_run), "--resume", "--steps", "6", "--threads", "1"]) == 0
    assert read_checkpoint(banana_run / "training.pt")["step"] == 6
    assert tomllib.loads((banana_run / "config.toml").read_text())["steps"] == 6


@pytest.mark.parametrize(
    "flags, message",
    [(["--lr", "0"], "expected a finite lr > 0"), (["--lr", "nan"], "expected a finite lr > 0"),
     (["--lr", "inf"], "expected a finite lr > 0"), (["--hidden", "0"], "expected hidden to be a positive int"),
     (["--batch-size", "0"], "expected batch_size to be a positive int"),
     (["--time-limit", "nan"], "expected a finite time_limit > 0"),
     (["--time-limit", "-1"], "expected a finite time_limit > 0"),
     (["--seed", str(2**64)], "expected seed to be an int in [0, 2**63)")],
)  # fmt: skip
def test_invalid_values_are_refused_before_anything_is_written(
    banana_run: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    fresh = banana_run.parent / "fresh"
    assert main([*BANANA, "--out", str(fresh), *flags]) == 2
    assert message in capsys.readouterr().err and not fresh.exists()
    before = _snapshot(banana_run)
    assert main([*BANANA, "--out", str(banana_run), "--resume", *flags]) == 2
    assert message in capsys.readouterr().err and _snapshot(banana_run) == before


def test_a_fresh_run_into_a_run_directory_needs_overwrite(banana_run: Path, capsys: pytest.CaptureFixture) -> None:
    (banana_run / "leapfrog.pt").write_bytes(b"of an older run")
    (banana_run / "notes.txt").write_text("mine")
    before = _snapshot(banana_run)
    assert main([*BANANA, "--steps", "3", "--out", str(banana_run)]) == 2
    assert "is not empty" in capsys.readouterr().err and _snapshot(banana_run) == before
    assert main([*BANANA, "--steps", "3", "--out", str(banana_run), "--overwrite"]) == 0
    assert not (banana_run / "leapfrog.pt").exists() and (banana_run / "notes.txt").read_text() == "mine"
    assert json.loads((banana_run / "metrics.json").read_text())["results"]["steps"] == 3
    assert not (banana_run / LOCK_FILE).exists()


def test_a_busy_run_directory_is_refused_even_with_overwrite(banana_run: Path, capsys: pytest.CaptureFixture) -> None:
    _write_lock(banana_run, pid=os.getpid())
    before = _snapshot(banana_run)
    for flags in (["--resume"], ["--overwrite"]):
        assert main([*BANANA, "--out", str(banana_run), *flags]) == 2
        assert "is in use by demo" in capsys.readouterr().err and _snapshot(banana_run) == before


def test_bad_paths_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*BANANA, "--out", ""])
    assert exit_.value.code == 2 and "--out needs a directory" in capsys.readouterr().err
    (tmp_path / "binary.toml").write_bytes(bytes(range(256)))
    assert main([*BANANA, "--config", str(tmp_path / "binary.toml")]) == 2
    error = capsys.readouterr().err
    assert "binary.toml is not a valid TOML text file" in error and len(error.strip().splitlines()) == 1


KILLER = """
import os, signal, sys
import canonflow.checkpoint
replace = os.replace
def killing_replace(source, target):
    if os.path.basename(target) == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)
    replace(source, target)
canonflow.checkpoint.os.replace = killing_replace
from canonflow.cli import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize("victim", ["samples.png", "metrics.json"])
def test_a_run_killed_while_writing_figures_or_metrics_resumes_to_a_whole_directory(
    tmp_path: Path, victim: str, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-c", KILLER, victim, *BANANA, "--steps", "4", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    assert subprocess.run(command, capture_output=True, env=env, timeout=120).returncode == -9
    assert (out / LOCK_FILE).exists() and not list(out.rglob(victim))  # killed before the rename: no torn file
    assert read_checkpoint(out / "training.pt")["step"] == 4
    with caplog.at_level(logging.WARNING, logger="canonflow.run_directory"):
        assert main([*BANANA, "--out", str(out), "--resume"]) == 0
    assert "stale lock" in caplog.text and not (out / LOCK_FILE).exists()
    assert json.loads((out / "metrics.json").read_text())["resumed"] is True
    assert (out / "figures" / "samples.png").read_bytes().startswith(b"\x89PNG")
