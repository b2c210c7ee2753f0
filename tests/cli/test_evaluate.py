"""``canonflow/cli/evaluate.py``: ``canonflow evaluate`` recomputes a model.pt's held-out metrics and refuses
corrupted, foreign and malicious files with one-line errors."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from canonflow.checkpoint import atomic_save, read_checkpoint
from canonflow.cli import main
from cli.common import BANANA, run_canonflow

pytestmark = pytest.mark.usefixtures("restore_threads")


def test_evaluate_recomputes_the_demo_metrics(tmp_path: Path) -> None:
    assert main([*BANANA, "--quick", "--quiet", "--steps", "20", "--out", str(tmp_path)]) == 0
    trained = json.loads((tmp_path / "metrics.json").read_text())["results"]
    done = run_canonflow("evaluate", str(tmp_path / "model.pt"))
    assert done.returncode == 0, done.stderr
    assert "CanonicalFlow" in done.stdout and "held-out metrics" in done.stdout
    assert f"test_nll: {json.dumps(trained['test_nll'])}" in done.stdout  # same weights, dtype and test set


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple:  # runs os.system on unpickling, which weights_only loading must refuse
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "canonflow", "kind": "CanonicalFlow", "payload": Exploit()}, tmp_path / "model.pt")
    done = run_canonflow("evaluate", str(tmp_path / "model.pt"))
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
