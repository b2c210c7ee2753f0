"""``canonflow/cli/options.py``: config precedence (defaults < config file < flags) and one-line errors for
invalid flags, keys, choices and object specs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

import canonflow
from canonflow.cli import main
from cli.common import BANANA, OWN_SYSTEM, run_canonflow

pytestmark = pytest.mark.usefixtures("restore_threads")


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
    done = run_canonflow("action-angle", "--system", "saturn")
    assert done.returncode == 2 and "kepler2d" in done.stderr and "Traceback" not in done.stderr


def test_nproc_must_be_positive_and_is_offered_only_where_supported(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--nproc", "0"])
    assert stop.value.code == 2
    assert "--nproc must be a positive number of processes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sample", "--nproc", "2"])
    assert "unrecognized arguments: --nproc" in capsys.readouterr().err


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
