"""``canonflow/cli/run.py``: the harness every subcommand runs in. Smoke runs of every subcommand through a
subprocess (``python -m canonflow``, as a user runs it) write config, metrics, model and figures; in-process runs
of :func:`canonflow.cli.main`, where a fault is injected into the training loop (``fault_at``), are interrupted
and resumed, diverge, or meet a training state of another architecture; ``--nproc`` runs data-parallel."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import canonflow
from canonflow.checkpoint import read_checkpoint
from canonflow.cli import COMMANDS, main
from canonflow.cli import run as run_module
from canonflow.cli.run import execute, script_main
from canonflow.distributed import DistributedContext
from canonflow.run_directory import METRICS_SCHEMA_VERSION, Run
from cli.common import BANANA, checkpoint_state, fault_at, run_canonflow

pytestmark = pytest.mark.usefixtures("restore_threads")


SCHEMA_KEYS = {
    "schema_version",
    "command",
    "argv",
    "canonflow_version",
    "torch_version",
    "python_version",
    "platform",
    "seed",
    "device",
    "dtype",
    "config",
    "resumed",
    "world_size",
    "started_at",
    "wall_seconds",
    "results",
}


# the three slowest train only 3 steps: what is checked is the run's files and keys, not the fit
SMOKE = {
    "demo": (["--steps", "3"], {"action_conservation", "angle_r2", "frequency_error", "frequency_matched"}),
    "action-angle": ([], {"action_conservation", "angle_r2", "frequency_error", "angle_independence"}),
    "free-energy": ([], {"exact_free_energy", "models"}),
    "density": ([], {"exact_test_nll", "models"}),
    "sample": (["--steps", "3"], {"samplers", "training"}),
    "learn-hamiltonian": (["--steps", "3"], {"hamiltonian_error", "rollout"}),
    "bench": (["--min-run-time", "0.01"], {"flows", "fields", "linear"}),
}


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_quick_run_writes_config_metrics_model_and_figures(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    flags, keys = SMOKE[name]
    out = tmp_path / "run"
    argv = [name, "--quick", "--quiet", "--threads", "1", "--out", str(out), *flags]
    # in-process: the same code path without another interpreter's start-up (3 s each); .ci/package-check runs the
    # README's main job (canonflow demo --quick) from the installed wheel in a fresh interpreter
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert f"wrote config.toml, metrics.json, figures and models to {out}" in stdout
    assert name != "demo" or ("kepler2d_demo" in stdout and "action conservation" in stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    assert SCHEMA_KEYS <= set(metrics) and keys <= set(metrics["results"])
    assert metrics["schema_version"] == METRICS_SCHEMA_VERSION and metrics["command"] == name
    assert metrics["canonflow_version"] == canonflow.__version__ and metrics["torch_version"] == torch.__version__
    assert metrics["argv"][:2] == ["canonflow", name] and metrics["config"]["quick"] is True
    config = tomllib.loads((out / "config.toml").read_text())
    assert config == {k: v for k, v in metrics["config"].items() if v is not None}
    figures = list((out / "figures").glob("*.png"))
    assert figures and all(figure.stat().st_size > 1000 for figure in figures)
    if name == "bench":
        return
    model = canonflow.load(out / "model.pt")
    assert sum(p.numel() for p in model.parameters()) > 0
    # evaluate recomputes the held-out metrics of every subcommand's model
    assert main(["evaluate", str(out / "model.pt"), "--quick", "--quiet", "--out", str(tmp_path / "eval")]) == 0
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())["results"]
    assert evaluated["trained_by"] == ("action-angle" if name == "demo" else name) and evaluated["metrics"]


def test_interrupted_and_resumed_run_ends_like_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    flags = [*BANANA, "--steps", "30", "--checkpoint-every", "10", "--seed", "4", "--quiet"]
    assert main([*flags, "--out", str(tmp_path / "straight")]) == 0
    with monkeypatch.context() as patch:
        fault_at(patch, 17, "interrupt")
        assert main([*flags, "--out", str(tmp_path / "resumed")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert read_checkpoint(tmp_path / "resumed" / "training.pt")["step"] == 17  # Ctrl-C saved the state
    assert not (tmp_path / "resumed" / "model.pt").exists()
    with monkeypatch.context() as patch:
        calls = fault_at(patch, None)
        assert main([*BANANA, "--out", str(tmp_path / "resumed"), "--resume", "--quiet"]) == 0  # config from OUT
    assert calls == [13]  # it went on from step 17 to 30
    straight, resumed = (
        checkpoint_state(tmp_path / "straight" / "model.pt"),
        checkpoint_state(tmp_path / "resumed" / "model.pt"),
    )
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["resumed"] is True and metrics["results"]["steps"] == 30


def test_a_training_state_of_another_architecture_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    small, run = tmp_path / "small", tmp_path / "run"
    assert main([*BANANA, "--steps", "5", "--hidden", "8", "--quiet", "--out", str(small)]) == 0
    assert main([*BANANA, "--steps", "5", "--quiet", "--out", str(run)]) == 0
    (run / "training.pt").write_bytes((small / "training.pt").read_bytes())  # the config still says hidden = 64
    assert main([*BANANA, "--steps", "10", "--quiet", "--out", str(run), "--resume"]) == 1
    error = capsys.readouterr().err
    assert "training.pt does not fit this model" in error and len(error) < 400 and "Traceback" not in error


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    fault_at(monkeypatch, 12, "nan")
    assert main([*BANANA, "--steps", "30", "--checkpoint-every", "5", "--quiet", "--out", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "loss became nan at step 12" in error and "last good checkpoint kept" in error
    assert "Traceback" not in error
    assert read_checkpoint(tmp_path / "training.pt")["step"] == 10
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.json").exists()


@pytest.mark.xdist_group("multi-process")  # with tests/test_distributed.py: one job with local ports at a time
def test_nproc_2_matches_one_process_and_only_rank_0_writes(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*BANANA, "--quick", "--quiet", "--steps", "40", "--out", str(one)]) == 0
    launched = run_canonflow(*BANANA, "--quick", "--quiet", "--steps", "40", "--nproc", "2", "--out", str(two))
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.count("banana density: trained 40 steps") == 1  # the report comes from rank 0 only
    assert json.loads((two / "metrics.json").read_text())["world_size"] == 2
    written = sorted(p.name for p in two.iterdir())
    assert written == ["config.toml", "figures", "metrics.json", "model.pt", "training.pt"]
    single, parallel = checkpoint_state(one / "model.pt"), checkpoint_state(two / "model.pt")
    for key, value in single.items():
        torch.testing.assert_close(parallel[key], value, rtol=0, atol=1e-6)


def test_a_command_without_data_parallel_support_refuses_a_distributed_context(
    capsys: pytest.CaptureFixture,
) -> None:
    context = DistributedContext(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"), backend="gloo")
    assert execute(COMMANDS["sample"].command(), {"quick": True}, distributed=context) == 2
    assert "sample does not support data-parallel runs" in capsys.readouterr().err


def test_nproc_relaunches_a_script_under_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    launched = []
    monkeypatch.setattr(run_module, "launch", lambda *args, **kwargs: launched.append((args, kwargs)) or 0)
    monkeypatch.setattr(sys, "argv", ["my_script.py", "--nproc", "2", "--quick"])
    assert script_main(COMMANDS["demo"].command()) == 0
    assert launched == [((2, ["my_script.py", "--nproc", "2", "--quick"]), {"module": None})]
    launched.clear()
    assert main(["demo", "--nproc", "2", "--quick"]) == 0
    assert launched == [((2, ["demo", "--nproc", "2", "--quick"]), {})]


def test_run_writes_only_with_a_directory_and_on_rank_0(tmp_path: Path) -> None:
    assert not Run().writes and Run(tmp_path).writes
    context = DistributedContext(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"), backend="gloo")
    assert not Run(tmp_path, distributed=context).writes
    options = Run(tmp_path, resume=True).training_options(
        {"seed": 3, "steps": None, "time_limit": 5.0, "checkpoint_every": 7},
        {"steps": 40, "lr": 0.1},
        "x",
        evaluations=20,
    )
    assert options["steps"] == 40 and options["time_limit"] == 5.0 and options["eval_every"] == 2
    assert options["checkpoint"] == str(tmp_path / "training.pt") and options["resume"] and options["seed"] == 3
