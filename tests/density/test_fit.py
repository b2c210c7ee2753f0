"""``canonflow/density/fit.py``: ``fit_density`` and ``fit_variational`` (objectives, annealing, gradient
clipping, resuming) and their input checks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from gaussians import F64, gaussian_target, quiet
from randomness import Z_SCORE, fixed_manual_seed, gen, manual_seed

from canonflow import CanonicalFlow
from canonflow.density import (
    DEFAULT_GRAD_CLIP,
    fit_density,
    fit_variational,
    latent_frequencies,
)
from canonflow.density import fit as density_fit
from canonflow.distributions import PhaseSpaceGaussian
from canonflow.estimators import forward_kl, free_energy, reverse_kl
from canonflow.training import TrainConfig, TrainResult


@pytest.mark.statistical
def test_linear_flow_recovers_gaussian_free_energy_exactly() -> None:
    fixed_manual_seed(0)
    n, beta = 2, 1.5
    energy = gaussian_target(n)
    flow = CanonicalFlow.build(n, blocks=0, linear="matrix_exp", beta=beta).double()
    fit_variational(flow, energy, beta, batch_size=256, config=quiet(1500, 0.03))
    estimate = free_energy(flow, energy, beta, num_samples=20000, generator=gen(1))
    exact = energy.free_energy(beta)
    assert abs(estimate.variational - exact) <= 1e-3
    assert abs(estimate.importance - exact) <= 1e-3
    assert estimate.ess_fraction > 0.99


@pytest.mark.statistical
def test_fit_density_learns_a_gaussian_from_configurations() -> None:
    manual_seed(9)
    n = 2
    q = torch.randn(40000, n, dtype=F64) * torch.tensor([2.0, 0.5], dtype=F64)
    flow = CanonicalFlow.build(n, blocks=0, linear="matrix_exp").double()
    fit = fit_density(flow, q, config=quiet(600, 0.03, eval_every=100))
    # the expected NLL of N(0, diag(4, 1/4)) is its entropy; a validation NLL of 4000 points scatters around it
    # with variance 2/4000 at most (per point: d/2 = 1 from q, at most 1 more from the augmenting momenta). A flow
    # that cannot rescale (a fixed N(0, I) base) is 1.1 nats off.
    exact = math.log(2.0 * 0.5) + n / 2 * (1 + math.log(2 * math.pi))
    assert abs(fit.best_validation - exact) < Z_SCORE * math.sqrt(2 / 4000)  # 4000 held out


@pytest.fixture
def small_flow() -> CanonicalFlow:
    return CanonicalFlow.build(2, blocks=0, linear="nak").double()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (torch.randn(10, 3, dtype=F64), "width"),
        (torch.full((10, 4), float("nan"), dtype=F64), "NaN"),
        (torch.zeros(0, 4, dtype=F64), "empty"),
        (torch.randn(10, dtype=F64), "shape"),
    ],
)
def test_fit_density_rejects_bad_data(small_flow, data, message) -> None:
    with pytest.raises(ValueError, match=f"fit_density.*{message}"):
        fit_density(small_flow, data, config=quiet(1, 0.01))


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf")])
def test_fit_variational_rejects_bad_beta(small_flow, beta) -> None:
    energy = gaussian_target(2)
    with pytest.raises(ValueError, match="fit_variational.*beta"):
        fit_variational(small_flow, energy, beta, config=quiet(1, 0.01))
    with pytest.raises(ValueError, match="free_energy.*beta"):
        free_energy(small_flow, energy, beta, num_samples=10)


def test_fit_variational_rejects_bad_energy(small_flow) -> None:
    with pytest.raises(ValueError, match="fit_variational.*energy must map"):
        fit_variational(small_flow, lambda x: x, 1.0, config=quiet(1, 0.01))
    with pytest.raises(TypeError, match="fit_variational.*callable"):
        fit_variational(small_flow, 3.0, 1.0, config=quiet(1, 0.01))


def test_fit_variational_rejects_an_unknown_gradient(small_flow) -> None:
    with pytest.raises(ValueError, match="fit_variational.*gradient"):
        fit_variational(small_flow, gaussian_target(2), 1.0, config=quiet(1, 0.01), gradient="score")
    with pytest.raises(ValueError, match="reverse_kl.*gradient"):
        reverse_kl(small_flow, gaussian_target(2), torch.randn(3, 4, dtype=F64), gradient="reinforce")


@pytest.mark.statistical
def test_mixture_flow_fits_a_two_component_target() -> None:
    # a target that is itself a 2-component oscillator mixture: a linear flow on the mixture base fits it
    target = PhaseSpaceGaussian.mixture(1, 2, centres=[[1.5, 0.0], [-1.5, 0.0]]).double()
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    flow = CanonicalFlow.build(1, blocks=0, linear="matrix_exp", base="mixture", components=2, radius=1.0).double()
    fit_variational(flow, lambda x: -target.log_prob(x), 1.0, batch_size=256, config=quiet(300, 0.03))
    found = free_energy(flow, lambda x: -target.log_prob(x), 1.0, 20000, gen(1))
    assert abs(found.variational) < 0.01 and found.ess_fraction > 0.97


def test_oscillator_mixture_rejects_bad_use() -> None:
    base = PhaseSpaceGaussian.mixture(2, 4, radius=1.0).double()
    with pytest.raises(ValueError, match="PhaseSpaceGaussian.log_prob"):
        base.log_prob(torch.randn(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="PhaseSpaceGaussian.strata.*at least K = 4"):
        base.strata_weights(3)
    with pytest.raises(ValueError, match="PhaseSpaceGaussian.strata.*at least K = 4"):
        base.rsample(3, stratified=True)
    with pytest.raises(ValueError, match="unconditional"):
        base.sample(2, context=torch.zeros(1, 1))
    flow = CanonicalFlow.build(2, blocks=0, base="mixture", components=4, radius=1.0).double()
    with pytest.raises(ValueError, match="strata.*at least K = 4"):
        fit_variational(flow, gaussian_target(2), 1.0, batch_size=3, config=quiet(1, 0.01))
    with pytest.raises(TypeError, match="latent_frequencies.*mixture"):
        latent_frequencies(flow)
    with pytest.raises(ValueError, match="CanonicalFlow.build.*base='mixture'"):
        CanonicalFlow.build(2, blocks=0, components=3)
    x, log_q = flow.sample_and_log_prob(3)  # i.i.d. draws need no stratification
    torch.testing.assert_close(log_q, flow.log_prob(x))


def test_fit_variational_clips_gradients_unless_a_config_says_otherwise(small_flow, monkeypatch) -> None:
    seen: list[TrainConfig] = []

    def record(model, loss_fn, config, **options) -> TrainResult:
        seen.append(config)
        return TrainResult()

    monkeypatch.setattr(density_fit, "train", record)
    energy = gaussian_target(2)
    fit_variational(small_flow, energy)
    fit_variational(small_flow, energy, steps=7, lr=0.1)
    fit_variational(small_flow, energy, grad_clip=None)
    given = quiet(5, 0.01)
    fit_variational(small_flow, energy, config=given)
    assert [config.grad_clip for config in seen] == [DEFAULT_GRAD_CLIP, DEFAULT_GRAD_CLIP, None, None]
    assert (seen[1].steps, seen[1].lr, seen[1].description) == (7, 0.1, "fit_variational") and seen[3] is given
    with pytest.raises(ValueError, match="fit_variational: pass either config or TrainConfig keyword"):
        fit_variational(small_flow, energy, config=given, steps=3)


@pytest.mark.parametrize("objective", ["reverse", "both"])
def test_fit_variational_anneals_from_beta_start(small_flow, objective: str) -> None:
    # the first loss is KL(q ‖ π_{β₀})/β up to a constant at β₀ = beta_start·β, on the first draws of the seed
    energy, beta = gaussian_target(2), 2.0
    start = copy.deepcopy(small_flow)
    result = fit_variational(
        small_flow, energy, beta, batch_size=64, objective=objective, anneal=0.5, beta_start=0.25, config=quiet(4, 0.01)
    )
    z = start.base.rsample(64, gen(0), stratified=True)
    expected = reverse_kl(start, energy, z, 0.25 * beta) / beta
    if objective == "both":
        generator = gen(0)
        start.base.rsample(64, generator, stratified=True)  # the forward term draws after the reverse one
        expected = expected + forward_kl(start, energy, 64, 0.25 * beta, generator) / beta
    assert result.losses[0] == pytest.approx(expected.item(), rel=1e-12)


def test_an_annealed_fit_resumes_on_its_schedule(tmp_path) -> None:
    # β follows the step: a fit stopped after one step (a 1 ns time limit) and resumed ends as one in one go does
    target = gaussian_target(2)
    config = quiet(6, 0.05, checkpoint=str(tmp_path / "training.pt"))
    flows, results = {}, {}
    for name, options in {
        "whole": {"checkpoint": None},
        "half": {"time_limit": 1e-9},
        "resumed": {"resume": True},
    }.items():
        fixed_manual_seed(3)
        flows[name] = CanonicalFlow.build(2, blocks=1, hidden=8).double()
        results[name] = fit_variational(
            flows[name], target, batch_size=32, anneal=1.0, config=TrainConfig(**{**config.__dict__, **options})
        )
    assert results["half"].steps == 1 and results["resumed"].losses == results["whole"].losses
    for a, b in zip(flows["whole"].parameters(), flows["resumed"].parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.statistical
def test_forward_kl_alone_fits_a_gaussian() -> None:
    fixed_manual_seed(0)
    energy = gaussian_target(1, seed=4)
    flow = CanonicalFlow.build(1, blocks=0, linear="matrix_exp").double()
    fit_variational(flow, energy, objective="forward", batch_size=128, config=quiet(150, 0.05))
    estimate = free_energy(flow, energy, num_samples=20000, generator=gen(2))
    exact = energy.free_energy(1.0)
    assert abs(estimate.importance - exact) < 2e-3 and estimate.ess_fraction > 0.999  # seen: 1e-4, 0.99995


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"objective": "sideways"}, "objective"),
        ({"anneal": 1.5}, "0 <= anneal <= 1"),
        ({"anneal": True}, "0 <= anneal <= 1"),
        ({"beta_start": 0.0}, "0 < beta_start <= 1"),
    ],
)
def test_fit_variational_rejects_bad_options(small_flow, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"fit_variational.*{message}"):
        fit_variational(small_flow, gaussian_target(2), config=quiet(1, 0.01), **options)
