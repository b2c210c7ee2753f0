"""``canonflow/hamiltonian_learning/fit.py``: ``fit_hamiltonian`` in each mode (with adjoint gradients), the
closed-form part first, validation, noise, and its input checks."""

from __future__ import annotations

import math

import pytest
import torch
from randomness import fixed_manual_seed

from canonflow.data import TrajectoryData
from canonflow.hamiltonian_learning import (
    HamiltonianNet,
    evaluate_hamiltonian,
    fit_hamiltonian,
    hamiltonian_test_sets,
)
from canonflow.systems import CoupledOscillator, HarmonicOscillator
from canonflow.training import TrainConfig
from hamiltonian_learning.common import box_data

MODES = [("derivative", False), ("leapfrog", False), ("implicit_midpoint", False), ("implicit_midpoint", True)]


@pytest.mark.statistical
@pytest.mark.parametrize(("mode", "adjoint"), MODES, ids=["derivative", "leapfrog", "midpoint", "midpoint-adjoint"])
def test_learns_an_exactly_representable_quadratic_hamiltonian(mode: str, adjoint: bool) -> None:
    system = HarmonicOscillator(1, omega=1.5)
    data = box_data(system)
    fixed_manual_seed(0)
    model = HamiltonianNet(1, depth=0, separable=mode == "leapfrog", quadratic=True, dtype="float64")
    # windows of two observations (four integrator steps): the loss falls as with windows of four (below 1e-6 of
    # its start at step 122, 1e-12 at the end) to the same errors (1.5e-4 to 1.8e-4), at half the cost; the window
    # losses of longer windows are checked on the true dynamics below
    options = {"derivatives": "exact"} if mode == "derivative" else {"window": 2, "substeps": 2}
    config = TrainConfig(steps=300, lr=0.1, progress=False)
    result = fit_hamiltonian(model, data, mode, adjoint=adjoint, batch_size=None, config=config, **options)
    assert result.losses[-1] < 1e-6 * result.losses[0]
    errors = evaluate_hamiltonian(model, system, num=2000)
    # mean |H| on [-2, 2]² is about 2. Trajectory matching learns the integrator's modified Hamiltonian,
    # which differs from H by O(h²) (h = 0.025 here); derivative matching has no such bias.
    tolerance = 1e-5 if mode == "derivative" else 1e-3
    assert errors["grid"] < tolerance and errors["uniform"] < tolerance, errors


@pytest.mark.statistical
def test_base_steps_fit_the_closed_form_part_first() -> None:
    # a quadratic H learned by a quadratic form plus an MLP: fitted jointly from the start the MLP takes a
    # share of H (and cannot extrapolate it); fitted first, the quadratic form carries H and the MLP stays small
    system = CoupledOscillator(0.5)
    data = box_data(system)
    shares = {}
    for base_steps in (0, 200):
        fixed_manual_seed(0)
        model = HamiltonianNet(1, hidden=16, depth=1, polynomial=2, dtype="float64")
        config = TrainConfig(steps=100, lr=0.02, progress=False)
        fit_hamiltonian(model, data, "derivative", derivatives="exact", base_steps=base_steps, config=config)
        x = hamiltonian_test_sets(system, num=1000)["gaussian"]
        with torch.no_grad():
            network = model.networks[0](x)
            shares[base_steps] = float((network - network.mean()).abs().mean() / system(x).mean())
    assert shares[200] < 0.25 * shares[0], shares  # about 0.02 vs 0.19


def test_adjoint_and_backprop_training_runs_coincide() -> None:
    data = box_data(CoupledOscillator(0.5), noise_std=0.01)
    losses = []
    for adjoint in (False, True):
        fixed_manual_seed(0)
        model = HamiltonianNet(1, hidden=8, depth=1, dtype="float64")
        config = TrainConfig(steps=5, lr=1e-2, progress=False)
        result = fit_hamiltonian(model, data, "implicit_midpoint", adjoint=adjoint, window=3, config=config)
        losses.append(result.losses)
    assert losses[0] == pytest.approx(losses[1], rel=1e-9)


@pytest.mark.statistical
def test_noise_free_data_gives_lower_error_than_noisy_data() -> None:
    system = CoupledOscillator(0.5)
    errors = {}
    for noise in (0.0, 0.1):
        fixed_manual_seed(0)
        model = HamiltonianNet(1, depth=0, quadratic=True, dtype="float64")
        config = TrainConfig(steps=300, lr=0.1, progress=False)
        fit_hamiltonian(model, box_data(system, noise), "derivative", batch_size=None, config=config)
        errors[noise] = evaluate_hamiltonian(model, system, num=2000)["uniform"]
    assert errors[0.0] < 0.5 * errors[0.1], errors


def test_validation_data_selects_the_best_weights() -> None:
    system = HarmonicOscillator(1)
    model = HamiltonianNet(1, hidden=8, depth=1, separable=True, dtype="float64")
    config = TrainConfig(steps=20, lr=1e-2, eval_every=5, progress=False)
    result = fit_hamiltonian(
        model, box_data(system), "leapfrog", window=3, validation_data=box_data(system), config=config
    )
    assert len(result.validation) == 4 and result.best_validation == min(v for _, v in result.validation)


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (torch.zeros(4, 10), {"dt": 0.1}, r"rank 3, shape \(num_traj, T, 2n\)"),
        (torch.zeros(4, 10, 3), {"dt": 0.1}, "even last dimension"),
        (torch.zeros(4, 10, 4), {"dt": 0.1}, r"2n = 2"),
        (torch.zeros(4, 1, 2), {"dt": 0.1}, "at least 2 time points"),
        (torch.zeros(4, 10, 2, dtype=torch.long), {"dt": 0.1}, "floating-point"),
        (torch.zeros(4, 10, 2), {"dt": 0.0}, "dt"),
        (torch.zeros(4, 10, 2), {"dt": -0.1}, "dt"),
        (torch.zeros(4, 10, 2), {"dt": math.nan}, "dt"),
        (torch.zeros(4, 10, 2), {}, "needs dt"),
        (torch.full((4, 10, 2), math.nan), {"dt": 0.1}, "NaN"),
        (torch.zeros(4, 10, 2), {"dt": 0.1, "mode": "midpoint"}, "unknown mode"),
        (torch.zeros(4, 10, 2), {"dt": 0.1, "mode": "leapfrog"}, "separable"),
        (torch.zeros(4, 10, 2), {"dt": 0.1, "adjoint": True}, "adjoint"),
        (torch.zeros(4, 10, 2), {"dt": 0.1, "derivatives": "exact"}, "TrajectoryData"),
        (torch.zeros(4, 10, 2), {"dt": 0.1, "derivatives": "central"}, "derivatives must be one of"),
        (torch.zeros(4, 2, 2), {"dt": 0.1}, "finite differences need at least 3 samples"),
        (torch.zeros(4, 10, 2), {"dt": 0.1, "tol": 0.0}, "tol"),
        (torch.zeros(4, 5, 2), {"dt": 0.1, "mode": "implicit_midpoint", "window": 7}, "at least 8 samples"),
        (torch.zeros(4, 10, 2), {"dt": 0.1, "window": 0}, "window"),
        (torch.zeros(4, 10, 2), {"dt": 0.1, "base_steps": 10}, "closed-form part"),
        (torch.zeros(4, 10, 2), {"dt": 0.1, "base_steps": -1}, "base_steps"),
        ([[0.0, 1.0]], {"dt": 0.1}, "TrajectoryData or a tensor"),
    ],
)
def test_bad_input_raises_errors_naming_the_function(data: object, options: dict, message: str) -> None:
    model = HamiltonianNet(1, hidden=4, depth=1)
    with pytest.raises((ValueError, TypeError), match=f"fit_hamiltonian.*{message}"):
        fit_hamiltonian(model, data, **options)


def test_non_uniform_times_and_conflicting_dt_are_refused() -> None:
    data = box_data(HarmonicOscillator(1))
    times = data.times.clone()
    times[-1] += 0.01
    uneven = TrajectoryData(times, data.states, data.clean_states, data.derivatives, 0.0, data.system_name)
    model = HamiltonianNet(1, hidden=4, depth=1)
    with pytest.raises(ValueError, match="fit_hamiltonian.*uniformly spaced"):
        fit_hamiltonian(model, uneven)
    with pytest.raises(ValueError, match="fit_hamiltonian.*contradicts"):
        fit_hamiltonian(model, data, dt=0.5)


def test_a_model_without_n_takes_its_width_from_the_data() -> None:
    class Quadratic(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(0.3, dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.scale * x.pow(2).sum(-1)

    data = box_data(HarmonicOscillator(1))
    model = Quadratic()
    result = fit_hamiltonian(model, data, derivatives="exact", config=TrainConfig(steps=50, lr=0.05, progress=False))
    assert result.losses[-1] < 1e-2 * result.losses[0]
    assert float(model.scale.detach()) == pytest.approx(0.5, abs=0.02)  # H = (q² + p²)/2
