"""The subcommand modules (``canonflow/cli/<name>.py``) on a preset that trains nothing and on the user's own
systems, targets and trajectory files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from canonflow.cli import main
from cli.common import OWN_SYSTEM, OWN_TARGET

pytestmark = pytest.mark.usefixtures("restore_threads")


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
