"""``canonflow/hamiltonian_learning/model.py``: ``HamiltonianNet``'s polynomial part, its options and saving."""

from __future__ import annotations

import pytest
import torch
from randomness import fixed_manual_seed

import canonflow
from canonflow.checkpoint import save_model
from canonflow.hamiltonian_learning import (
    HamiltonianNet,
    evaluate_hamiltonian,
    fit_hamiltonian,
)
from canonflow.systems import DoubleWell
from canonflow.training import TrainConfig
from hamiltonian_learning.common import box_data


@pytest.mark.statistical
@pytest.mark.parametrize("separable", [False, True], ids=["joint", "separable"])
def test_polynomial_part_represents_a_quartic_hamiltonian_exactly(separable: bool) -> None:
    system = DoubleWell()  # H = p²/2 + q⁴/4 − q²/2: a polynomial of degree 4
    model = HamiltonianNet(1, depth=0, separable=separable, polynomial=4, dtype="float64")
    assert model.polynomial_coefficients.shape == ((2, 4) if separable else (1, 14))
    config = TrainConfig(steps=400, lr=0.05, progress=False)
    fit_hamiltonian(model, box_data(system), "derivative", derivatives="exact", batch_size=None, config=config)
    errors = evaluate_hamiltonian(model, system, num=2000)
    # mean |H| is about 1 on [−2, 2]² and grows like q⁴ in the Gaussian's tails, which only an exact
    # polynomial follows; a tanh MLP trained the same way stays above 0.1 there
    assert max(errors.values()) < 1e-3, errors


def test_polynomial_monomials_have_finite_derivatives_at_zero() -> None:
    model = HamiltonianNet(1, depth=0, polynomial=3, dtype="float64")
    torch.nn.init.normal_(model.polynomial_coefficients)
    x = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(gradient.sum(), x)
    assert bool(torch.isfinite(gradient).all() and torch.isfinite(second).all())
    torch.testing.assert_close(gradient, model.polynomial_coefficients[:, :2])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"polynomial": -1}, "polynomial"),
        ({"polynomial": 2, "quadratic": True}, "already contains the quadratic form"),
        ({"depth": 0}, "depth=0"),
    ],
)
def test_bad_model_options_raise(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"HamiltonianNet.*{message}"):
        HamiltonianNet(1, **options)


@pytest.mark.parametrize(
    "options",
    [{}, {"separable": True, "quadratic": True, "activation": "softplus"}, {"polynomial": 3}],
    ids=["plain", "separable-quadratic", "polynomial"],
)
def test_save_load_round_trip(tmp_path: object, options: dict) -> None:
    fixed_manual_seed(0)
    model = HamiltonianNet(2, hidden=8, depth=2, dtype="float64", **options)
    for parameter in model.closed_form_parameters:
        torch.nn.init.normal_(parameter)
    path = tmp_path / "model.pt"
    save_model(path, model)
    loaded = canonflow.load(path)
    assert isinstance(loaded, HamiltonianNet) and loaded.config() == model.config()
    x = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
