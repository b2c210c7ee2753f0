"""``canonflow/hamiltonian_learning/metrics.py``: the Hamiltonian error and rollouts, and the committed models of
the learn-hamiltonian reference runs re-evaluated to their published errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import canonflow
from canonflow.hamiltonian_learning import (
    HamiltonianNet,
    evaluate_hamiltonian,
    hamiltonian_error,
    hamiltonian_test_sets,
    rollout,
)
from canonflow.systems import CoupledOscillator, DoubleWell, HarmonicOscillator, HenonHeiles, Pendulum


def test_hamiltonian_error_ignores_the_offset_and_test_sets_follow_the_protocol() -> None:
    system = CoupledOscillator(0.5)
    sets = hamiltonian_test_sets(system, num=1000)
    assert sets["grid"].shape == (900, 2) and sets["uniform"].shape == (1000, 2)
    assert sets["grid"].abs().max() == 2.0 and sets["uniform"].abs().max() <= 2.0
    assert hamiltonian_error(lambda x: system(x) + 3.0, system, sets["gaussian"]) < 1e-12
    assert hamiltonian_error(lambda x: 1.1 * system(x), system, sets["grid"]) > 0.05
    henon = hamiltonian_test_sets(HenonHeiles(), num=100)
    for points in henon.values():
        assert points.shape[1] == 4
        assert bool((points[:, 0] == 0.1).all() and (points[:, 2] == 0.2).all())
    assert henon["grid"][:, [1, 3]].abs().max() == 0.5
    with pytest.raises(ValueError, match="hamiltonian_test_sets"):
        hamiltonian_test_sets(HarmonicOscillator(3))


def test_rollout_of_the_true_hamiltonian_conserves_energy() -> None:
    system = HarmonicOscillator(1)
    initial = torch.tensor([[1.0, 0.0], [0.0, -0.5]], dtype=torch.float64)
    result = rollout(system, system, initial, 10.0, 51, integrator="rk4", substeps=10)
    assert result.true_states.shape == result.learned_states.shape == (2, 51, 2)
    assert result.energy_error.shape == (2, 51)
    assert result.energy_mse < 1e-12 and result.state_mse < 1e-10


RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"


PUBLISHED_SYSTEMS = {  # the systems of the learn-hamiltonian protocols
    "spring": HarmonicOscillator(1, omega=1.0),
    "pendulum": Pendulum(g=1.5, l=1.0),
    "double_well": DoubleWell(),
    "coupled_oscillator": CoupledOscillator(0.5),
    "henon_heiles": HenonHeiles(),
}


@pytest.mark.parametrize("directory", sorted(p.name for p in RESULTS.glob("hamiltonian_*")))
def test_committed_models_reproduce_their_published_hamiltonian_errors(directory: str) -> None:
    system = PUBLISHED_SYSTEMS[directory.removeprefix("hamiltonian_").removesuffix("_mlp")]
    model = canonflow.load(RESULTS / directory / "model.pt")
    assert isinstance(model, HamiltonianNet)
    metrics = json.loads((RESULTS / directory / "metrics.json").read_text())
    published = metrics.get("hamiltonian_error") or metrics["results"]["hamiltonian_error"]
    errors = evaluate_hamiltonian(model, system, seed=metrics["seed"], num=100_000)
    # the runs evaluated the same points; only the summation order of a different thread count may differ
    assert errors == pytest.approx({k: published[k] for k in errors}, rel=1e-9)
