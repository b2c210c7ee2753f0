"""The command line: every subcommand runs end to end, help everywhere, config precedence, resume, failures.

Smoke runs go through a subprocess (``python -m canonflow``, as a user runs it); the tests of failure handling
call :func:`canonflow.cli.main` in-process, where a fault can be injected into the training loop: the banana
demo's loss, wrapped on its way into ``canonflow.training.train``, raises ``KeyboardInterrupt`` or returns NaN at a
chosen step, as a Ctrl-C or a diverging loss would.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import canonflow
import canonflow.density.fit as density_fit
from canonflow.checkpoint import atomic_save, read_checkpoint
from canonflow.cli import COMMANDS, main
from canonflow.cli import run as run_module
from canonflow.cli.run import execute, script_main
from canonflow.distributed import DistributedContext
from canonflow.presets import COMMANDS as PRESET_COMMANDS
from canonflow.presets import GENERIC, load_preset, merge, presets
from canonflow.run_directory import METRICS_SCHEMA_VERSION, Run

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("restore_threads")
BANANA = ["demo", "--example", "banana"]  # the fast demo, for tests of the machinery around training
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
# per subcommand: extra flags of its smoke run and keys its results must have
SMOKE = {
    "demo": ([], {"action_conservation", "angle_r2", "frequency_error", "frequency_matched"}),
    "action-angle": ([], {"action_conservation", "angle_r2", "frequency_error", "angle_independence"}),
    "free-energy": ([], {"exact_free_energy", "models"}),
    "density": ([], {"exact_test_nll", "models"}),
    "sample": ([], {"samplers", "training"}),
    "learn-hamiltonian": ([], {"hamiltonian_error", "rollout"}),
    "bench": (["--min-run-time", "0.01"], {"flows", "fields", "linear"}),
}


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "canonflow", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def _state(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def _fault_at(monkeypatch: pytest.MonkeyPatch, step: int | None, fault: str = "") -> list[int]:
    """Make the training loop's loss raise ``KeyboardInterrupt`` (``fault="interrupt"``) or return NaN
    (``fault="nan"``) at its ``step``-th evaluation (``None``: never); returns ``[evaluations so far]``."""
    calls = [0]
    train = density_fit.train

    def faulty_train(model: torch.nn.Module, loss_fn: Callable, *args: Any, **kwargs: Any) -> Any:
        def loss(generator: torch.Generator) -> torch.Tensor:
            calls[0] += 1
            if calls[0] - 1 == step:
                if fault == "interrupt":
                    raise KeyboardInterrupt
                return torch.tensor(float("nan"))
            return loss_fn(generator)

        return train(model, loss, *args, **kwargs)

    monkeypatch.setattr(density_fit, "train", faulty_train)
    return calls


# ---------------------------------------------------------------------------------------------- smoke runs
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


def test_calogero_moser_preset_is_the_exact_chart_and_trains_nothing(tmp_path: Path) -> None:
    argv = ["action-angle", "--system", "calogero_moser", "--quick", "--quiet", "--threads", "1"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())["results"]
    assert results["training_steps"] == 0 and results["num_train"] == 0
    assert max(results["action_conservation"]) < 1e-9 and max(results["action_error"]) < 1e-9
    assert results["frequency_matched"] == [1, 2, 3] and min(results["angle_r2"]) > 1 - 1e-12
    model = str(tmp_path / "run" / "model.pt")
    assert main(["evaluate", model, "--quick", "--quiet", "--out", str(tmp_path / "e")]) == 0
    evaluated = json.loads((tmp_path / "e" / "metrics.json").read_text())["results"]["metrics"]
    assert max(evaluated["action_error"]) < 1e-9


def test_evaluate_recomputes_the_demo_metrics(tmp_path: Path) -> None:
    assert main([*BANANA, "--quick", "--quiet", "--steps", "20", "--out", str(tmp_path)]) == 0
    trained = json.loads((tmp_path / "metrics.json").read_text())["results"]
    done = _run("evaluate", str(tmp_path / "model.pt"))
    assert done.returncode == 0, done.stderr
    assert "CanonicalFlow" in done.stdout and "held-out metrics" in done.stdout
    assert f"test_nll: {json.dumps(trained['test_nll'])}" in done.stdout  # same weights, dtype and test set


# ---------------------------------------------------------------------------------------------- help
def test_help_lists_every_subcommand() -> None:
    done = _run("--help")
    assert done.returncode == 0
    assert all(name in done.stdout for name in COMMANDS)


def test_help_and_version_import_neither_torch_nor_the_library() -> None:
    # --help within 1.5 s needs a parser built from data: the catalog and the options, not the subcommands' modules
    probe = (
        "import sys\nfrom canonflow.cli import main\n"
        "for argv in (['--help'], ['--version'], *([name, '--help'] for name in sys.argv[1:])):\n"
        "    try:\n        main(argv)\n    except SystemExit as exit_:\n        assert exit_.code == 0, argv\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'numpy', 'nflows'))\n"
        "assert not loaded, loaded[:5]\n"
        "assert not [name for name in sys.modules if name.startswith('canonflow.cli.') and name not in "
        "('canonflow.cli.catalog', 'canonflow.cli.options')]\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *COMMANDS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_catalog_choices_are_the_library_s() -> None:
    # the catalog names choices as data; the library's own lists are the truth
    from canonflow.hamiltonian_learning import MODES
    from canonflow.sampling import TARGETS

    choices = {name: {option.name: option.choices for option in command.options} for name, command in COMMANDS.items()}
    assert tuple(choices["learn-hamiltonian"]["mode"]) == tuple(MODES)
    assert sorted(choices["sample"]["target"]) == sorted(TARGETS)
    for name, command in COMMANDS.items():
        assert command.command().options == command.options and command.command().name == name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_of_each_subcommand_lists_choices_and_defaults(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0
    for option in COMMANDS[name].options:
        if not option.positional:
            assert option.flag in text
        for choice in option.choices or ():
            assert str(choice) in text
    assert "(default:" in text and "--config" in text and "--out" in text
    assert ("--resume" in text) == COMMANDS[name].resumable
    assert not any(markup in text for markup in (":func:", ":class:", ":mod:", "``")), "help in plain words"


# ---------------------------------------------------------------------------------------------- config
def test_flags_override_the_config_file_which_overrides_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text("steps = 7\nseed = 3\nlr = 0.02\n")
    out = tmp_path / "out"
    assert main([*BANANA, "--config", str(tmp_path / "run.toml"), "--seed", "5", "--quiet", "--out", str(out)]) == 0
    config = tomllib.loads((out / "config.toml").read_text())
    assert (config["steps"], config["seed"], config["lr"]) == (7, 5, 0.02)  # file, flag, file
    assert config["batch_size"] == 256  # default
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["results"]["steps"] == 7 and metrics["seed"] == 5


def test_config_file_errors_name_the_valid_keys_and_choices(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "unknown.toml").write_text("steps = 7\nlearning_rate = 0.1\n")
    assert main([*BANANA, "--config", str(tmp_path / "unknown.toml")]) == 2
    error = capsys.readouterr().err
    assert "unknown key(s) learning_rate" in error and "lr" in error and "Traceback" not in error
    (tmp_path / "choice.toml").write_text('system = "saturn"\n')
    assert main(["action-angle", "--config", str(tmp_path / "choice.toml")]) == 2
    assert "invalid system 'saturn'; choose one of" in capsys.readouterr().err
    (tmp_path / "type.toml").write_text('steps = "many"\n')
    assert main([*BANANA, "--config", str(tmp_path / "type.toml")]) == 2
    assert "steps must be a int, got 'many'" in capsys.readouterr().err
    assert main([*BANANA, "--config", str(tmp_path / "missing.toml")]) == 2
    assert "no config file at" in capsys.readouterr().err


def test_invalid_flags_give_clear_errors(capsys: pytest.CaptureFixture) -> None:
    assert main(["action-angle", "--system", "saturn"]) == 2
    assert "kepler2d" in capsys.readouterr().err
    assert main(["action-angle", "--system", "kepler2"]) == 2
    assert "invalid system 'kepler2'; did you mean 'kepler2d'?" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"canonflow {canonflow.__version__}\n"
    assert main([*BANANA, "--steps", "0"]) == 2
    assert "command line: expected steps to be a positive int, got 0" in capsys.readouterr().err
    assert main([*BANANA, "--device", "cuda:99"]) == 2
    assert "'cuda:99' requested but" in capsys.readouterr().err
    assert main([*BANANA, "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_unknown_system_on_the_command_line_lists_the_choices() -> None:
    done = _run("action-angle", "--system", "saturn")
    assert done.returncode == 2 and "kepler2d" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------- resume
def test_interrupted_and_resumed_run_ends_like_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    flags = [*BANANA, "--steps", "30", "--checkpoint-every", "10", "--seed", "4", "--quiet"]
    assert main([*flags, "--out", str(tmp_path / "straight")]) == 0
    with monkeypatch.context() as patch:
        _fault_at(patch, 17, "interrupt")
        assert main([*flags, "--out", str(tmp_path / "resumed")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert read_checkpoint(tmp_path / "resumed" / "training.pt")["step"] == 17  # Ctrl-C saved the state
    assert not (tmp_path / "resumed" / "model.pt").exists()
    with monkeypatch.context() as patch:
        calls = _fault_at(patch, None)
        assert main([*BANANA, "--out", str(tmp_path / "resumed"), "--resume", "--quiet"]) == 0  # config from OUT
    assert calls == [13]  # it went on from step 17 to 30
    straight, resumed = _state(tmp_path / "straight" / "model.pt"), _state(tmp_path / "resumed" / "model.pt")
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


# ---------------------------------------------------------------------------------------------- failures
def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _fault_at(monkeypatch, 12, "nan")
    assert main([*BANANA, "--steps", "30", "--checkpoint-every", "5", "--quiet", "--out", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "loss became nan at step 12" in error and "last good checkpoint kept" in error
    assert "Traceback" not in error
    assert read_checkpoint(tmp_path / "training.pt")["step"] == 10
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.json").exists()


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple:  # runs os.system on unpickling, which weights_only loading must refuse
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "canonflow", "kind": "CanonicalFlow", "payload": Exploit()}, tmp_path / "model.pt")
    done = _run("evaluate", str(tmp_path / "model.pt"))
    assert done.returncode == 1 and not marker.exists()
    assert "weights_only loading refuses" in done.stderr and "Traceback" not in done.stderr


def test_truncated_foreign_and_wrong_architecture_checkpoints_give_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([*BANANA, "--steps", "3", "--quiet", "--out", str(tmp_path)]) == 0
    good = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    (tmp_path / "text.pt").write_bytes(pickle.dumps("not a checkpoint"))
    (tmp_path / "empty.pt").write_bytes(b"")
    payload = read_checkpoint(tmp_path / "model.pt")
    payload["config"]["hidden"] = 32
    atomic_save(payload, tmp_path / "wrong.pt")
    expected = {
        "truncated.pt": "not a readable canonflow checkpoint",
        "foreign.pt": "not a canonflow checkpoint",
        "text.pt": "not a readable canonflow checkpoint",
        "empty.pt": "not a readable canonflow checkpoint",
        "wrong.pt": "weights do not fit a CanonicalFlow",
        "training.pt": "is a training state",
        "missing.pt": "no checkpoint at",
    }
    usage = ("training.pt", "missing.pt")  # the wrong file given: exit code 2; an unusable checkpoint: 1
    for name, message in expected.items():
        assert main(["evaluate", str(tmp_path / name), "--quiet"]) == (2 if name in usage else 1), name
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error and len(error.strip().splitlines()) == 1, error


@pytest.mark.xdist_group("multi-process")  # with tests/test_distributed.py: one job with local ports at a time
def test_nproc_2_matches_one_process_and_only_rank_0_writes(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*BANANA, "--quick", "--quiet", "--steps", "40", "--out", str(one)]) == 0
    launched = _run(*BANANA, "--quick", "--quiet", "--steps", "40", "--nproc", "2", "--out", str(two))
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.count("banana density: trained 40 steps") == 1  # the report comes from rank 0 only
    assert json.loads((two / "metrics.json").read_text())["world_size"] == 2
    written = sorted(p.name for p in two.iterdir())
    assert written == ["config.toml", "figures", "metrics.json", "model.pt", "training.pt"]
    single, parallel = _state(one / "model.pt"), _state(two / "model.pt")
    for key, value in single.items():
        torch.testing.assert_close(parallel[key], value, rtol=0, atol=1e-6)


def test_nproc_must_be_positive_and_is_offered_only_where_supported(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--nproc", "0"])
    assert stop.value.code == 2
    assert "--nproc must be a positive number of processes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sample", "--nproc", "2"])
    assert "unrecognized arguments: --nproc" in capsys.readouterr().err


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


# ---------------------------------------------------------------------------------------------- presets
def test_presets_are_the_choices_and_quick_merges_over_them() -> None:
    for command in ("action-angle", "free-energy"):  # the generic preset is for the user's own systems
        choices = {option.name: option.choices for option in COMMANDS[command].options}
        assert sorted(set(presets(command)) - {GENERIC}) == list(choices["system"])
    for command in PRESET_COMMANDS:  # every shipped file loads, and --quick changes only what it lists
        for preset in presets(command).values():
            assert preset.settings(quick=True) == merge(preset.settings(), preset.quick)
    kepler = load_preset("action-angle", "kepler2d")
    assert kepler.settings()["train"]["steps"] == 3000 and kepler.settings(quick=True)["train"]["steps"] == 1000
    assert kepler.settings(quick=True)["train"]["lr"] == 1e-2  # tables merge into tables
    assert load_preset("sample", "funnel").settings(quick=True)["leapfrog_steps"] == 2
    with pytest.raises(ValueError, match="choose one of calogero_moser"):
        load_preset("action-angle", "saturn")


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


# ---------------------------------------------------------------------------------------------- your own objects
OWN_SYSTEM = """
import torch
from canonflow.systems import HamiltonianSystem

def potential(q):
    return 0.5 * (q[:, 0] ** 2 - 1) ** 2 + 2.0 * q[:, 1] ** 2

system = HamiltonianSystem.from_potential(potential, n=2)
not_a_system = potential


def initial(num, generator):
    return 2 * torch.rand(num, 2, generator=generator, dtype=torch.float64) - 1


quartic = HamiltonianSystem.from_potential(lambda q: 0.25 * q[:, 0] ** 4, n=1, sample_initial=initial)
"""


def test_free_energy_of_your_own_system_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "mine.py").write_text(OWN_SYSTEM)
    spec, out = f"{tmp_path / 'mine.py'}:system", tmp_path / "run"
    argv = ["free-energy", "--system", spec, "--quick", "--quiet", "--steps", "30", "--samples", "4000"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "exact F unknown" in capsys.readouterr().out
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert results["system"] == spec and results["n"] == 2 and results["exact_free_energy"] is None
    entry = results["models"]["canonflow"]
    assert entry["importance_error"] is None and math.isfinite(entry["importance"]) and entry["ess"] > 0
    assert main(["evaluate", str(out / "model.pt"), "--quick", "--quiet"]) == 0  # re-imports the system
    assert "importance" in capsys.readouterr().out


OWN_TARGET = """
import torch
from canonflow.sampling import Target

def two_wells(q):
    return (q[:, 0] ** 2 - 1) ** 2 + 0.5 * q[:, 1] ** 2

target = Target.from_potential(two_wells, 2, name="two_wells")
"""


def test_sample_your_own_target_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "mine.py").write_text(OWN_TARGET)
    spec, out = f"{tmp_path / 'mine.py'}:target", tmp_path / "run"
    flags = ["--quick", "--quiet", "--steps", "5", "--precondition", "none"]  # the smoke run covers the default's fit
    assert main(["sample", "--target", spec, *flags, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("flow_mcmc") and "R-hat" in line and "moments" not in line for line in lines)
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert results["target"] == spec and results["dim"] == 2 and results["exact_iid_reference"] is None
    assert set(results["samplers"]) == {"hmc", "neutra_hmc", "flow_mcmc", "learned_leapfrog_mcmc"}
    assert all("within_4_se" not in score and score["ess_bulk_min"] > 0 for score in results["samplers"].values())
    assert (out / "figures" / "samples.png").stat().st_size > 1000
    assert main(["evaluate", str(out / "model.pt"), "--quick", "--quiet"]) == 0  # re-imports the target
    assert "log_normalizer_estimate" in capsys.readouterr().out


def test_learn_a_hamiltonian_from_your_own_trajectory_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from canonflow.data import save_trajectories, trajectories
    from canonflow.systems import HarmonicOscillator

    system = HarmonicOscillator(1)
    initial = system.sample_initial(5, generator=torch.Generator().manual_seed(0))
    save_trajectories(trajectories(system, 5, (3.0, 16), initial=initial), tmp_path / "spring.csv", momenta=False)
    out, data = tmp_path / "run", str(tmp_path / "spring.csv")
    argv = ["learn-hamiltonian", "--data", data, "--mass", "1.0", "--damping", "--quick", "--quiet", "--steps", "5"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "rollouts over the held-out trajectories" in capsys.readouterr().out
    results = json.loads((out / "metrics.json").read_text())["results"]
    train, held_out = (results["records"][key]["trajectories"] for key in ("train", "held_out"))
    assert (train, held_out, results["records"]["in_sample"]) == (4, 1, False)
    assert results["data"] == data and results["training"]["steps"] == 5 and results["damping"] >= 0
    assert results["record_rollout"]["samples"] == 15 and math.isfinite(results["record_rollout"]["state_mse"])
    assert (out / "figures" / "record_rollout.png").stat().st_size > 1000
    assert main(["evaluate", str(out / "model.pt"), "--quick", "--quiet"]) == 0  # the same held-out rollouts
    assert f"record_rollout: {json.dumps(results['record_rollout'])}" in capsys.readouterr().out
    missing = tmp_path / "missing"
    assert main(["learn-hamiltonian", "--data", str(tmp_path / "none.csv"), "--quick", "--out", str(missing)]) == 2
    assert "data: no file" in capsys.readouterr().err and not missing.exists()


@pytest.mark.parametrize(
    "spec, message",
    [("{dir}/missing.py:system", "no file"), ("{dir}/mine.py:nothing", "to be a HamiltonianSystem, got nothing"),
     ("{dir}/mine.py:not_a_system", "to be a HamiltonianSystem, got function"),
     ("no_such_module_anywhere:system", "importing no_such_module_anywhere failed: ModuleNotFoundError"),
     ("{dir}/mine.py:", "expected 'package.module:name' or 'path/to/file.py:name'")],
)  # fmt: skip
def test_a_bad_object_spec_is_a_one_line_error_before_anything_is_written(
    tmp_path: Path, spec: str, message: str, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "mine.py").write_text(OWN_SYSTEM)
    out = tmp_path / "run"
    assert main(["free-energy", "--system", spec.format(dir=tmp_path), "--quick", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1 and not out.exists(), error


def test_action_angle_of_your_own_system_from_a_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "my_systems.py").write_text(OWN_SYSTEM)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    argv = ["action-angle", "--system", "my_systems:quartic", "--quick", "--quiet", "--steps", "10"]
    assert main([*argv, "--out", str(out)]) == 0
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert results["system"] == "my_systems:quartic" and results["n"] == 1 and results["training_steps"] == 10
    assert results["description"] == "your own system (generic preset)" and len(results["action_conservation"]) == 1
    assert main(["evaluate", str(out / "model.pt"), "--quick", "--quiet"]) == 0
    assert "action_conservation" in capsys.readouterr().out


def test_the_sample_options_offer_the_library_choices() -> None:
    # the catalog names them without importing torch; the library's tuples are the truth
    from canonflow.sampling import METRICS
    from canonflow.sampling.comparison import SAMPLERS

    options = {option.name: option for option in COMMANDS["sample"].options}
    assert tuple(options["metric"].choices) == METRICS and tuple(options["sampler"].choices) == SAMPLERS
    assert options["metric"].default == "auto" and options["sampler"].default == "hmc"
