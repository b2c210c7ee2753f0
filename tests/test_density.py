"""Density estimation, variational free energies, estimators and the oscillator base."""

from __future__ import annotations

import math

import pytest
import torch
from nflows.flows import Flow
from nflows.transforms import CompositeTransform

import canonflow
from canonflow.density import (
    PhaseSpaceFlow,
    fit_density,
    fit_variational,
    free_energy,
    gaussian_nll,
    importance_expectation,
    latent_dependence,
    latent_frequencies,
    log_importance_weights,
    nll,
    variational_loss,
)
from canonflow.distributions import OscillatorBase
from canonflow.training import TrainConfig
from canonflow.transforms import LinearSymplectic

F64 = torch.float64


class QuadraticEnergy:
    """``H(x) = xᵀ A x / 2`` with exact ``F(β) = −(1/β) ln((2π/β)ⁿ / sqrt(det A))``."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((x @ self.matrix) * x).sum(-1)

    def free_energy(self, beta: float) -> float:
        dim = self.matrix.shape[0]
        log_z = 0.5 * dim * math.log(2 * math.pi / beta) - 0.5 * float(torch.logdet(self.matrix))
        return -log_z / beta


def _gaussian_target(n: int, seed: int = 0) -> QuadraticEnergy:
    generator = torch.Generator().manual_seed(seed)
    factor = torch.randn(2 * n, 2 * n, generator=generator, dtype=F64) / math.sqrt(2 * n)
    return QuadraticEnergy(factor @ factor.T + 0.5 * torch.eye(2 * n, dtype=F64))


def _quiet(steps: int, lr: float, **kwargs) -> TrainConfig:
    return TrainConfig(steps=steps, lr=lr, progress=False, **kwargs)


# ---------------------------------------------------------------------------------------------- oscillator base
def test_oscillator_base_log_prob_sampling_and_dtype() -> None:
    frequencies = torch.tensor([0.5, 1.0, 3.0])
    base = OscillatorBase(3, beta=2.0, frequencies=frequencies).double()
    draws = base.sample(20000)
    assert draws.dtype == F64 and draws.shape == (20000, 6)
    std = (1.0 / (2.0 * base.frequencies.detach())).sqrt().repeat(2)
    torch.testing.assert_close(draws.std(0), std, rtol=0.03, atol=0)
    expected = torch.distributions.Normal(torch.zeros(6, dtype=F64), std).log_prob(draws[:5]).sum(-1)
    torch.testing.assert_close(base.log_prob(draws[:5]), expected, rtol=1e-12, atol=1e-12)
    assert base.float().sample(4).dtype == torch.float32
    with pytest.raises(ValueError, match="OscillatorBase"):
        base.double().log_prob(torch.randn(2, 5, dtype=F64))
    with pytest.raises(ValueError, match="unconditional"):
        base.sample(2, context=torch.zeros(1, 1))
    with pytest.raises(ValueError, match="OscillatorBase"):
        OscillatorBase(2, beta=0.0)
    with pytest.raises(ValueError, match="positive"):
        OscillatorBase(2, frequencies=torch.tensor([1.0, -1.0]))


def test_oscillator_base_normalization() -> None:
    base = OscillatorBase(1, beta=0.7, frequencies=torch.tensor([1.7])).double()
    grid = torch.linspace(-12, 12, 801, dtype=F64)
    q, p = torch.meshgrid(grid, grid, indexing="ij")
    density = base.log_prob(torch.stack([q.flatten(), p.flatten()], -1)).exp()
    assert abs(float(density.detach().sum()) * float(grid[1] - grid[0]) ** 2 - 1.0) < 1e-6


# ---------------------------------------------------------------------------------------------- free energies
def test_linear_flow_recovers_gaussian_free_energy_exactly() -> None:
    torch.manual_seed(0)
    n, beta = 2, 1.5
    energy = _gaussian_target(n)
    flow = PhaseSpaceFlow(n, blocks=0, linear="matrix_exp", beta=beta).double()
    fit_variational(flow, energy, beta, batch_size=256, config=_quiet(1500, 0.03))
    estimate = free_energy(flow, energy, beta, num_samples=20000, generator=torch.Generator().manual_seed(1))
    exact = energy.free_energy(beta)
    assert abs(estimate.variational - exact) <= 1e-3
    assert abs(estimate.importance - exact) <= 1e-3
    assert estimate.ess_fraction > 0.99


def test_importance_sampled_free_energy_is_unbiased() -> None:
    # A fixed, mismatched Gaussian proposal for a Gaussian target: F is known exactly, F_var is not.
    torch.manual_seed(3)
    n, beta = 2, 1.0
    energy = _gaussian_target(n, seed=4)
    flow = Flow(CompositeTransform([LinearSymplectic(n)]), OscillatorBase(n, beta)).double()
    with torch.no_grad():
        flow._distribution.log_frequency.fill_(math.log(0.8))
    exact = energy.free_energy(beta)
    estimate = free_energy(flow, energy, beta, num_samples=40_000, generator=torch.Generator().manual_seed(5))
    assert estimate.variational > exact + 0.05  # the proposal is visibly imperfect
    assert abs(estimate.importance - exact) <= 4 * estimate.importance_stderr
    assert 0.0 < estimate.ess_fraction < 1.0
    # importance-weighted expectation of the energy: equipartition gives E[H] = (2n)/(2β) = n/β
    x, log_w = log_importance_weights(flow, energy, beta, 40_000, torch.Generator().manual_seed(6))
    mean, stderr, ess = importance_expectation(energy(x), log_w)
    assert abs(mean - n / beta) <= 4 * stderr and ess > 500


# ---------------------------------------------------------------------------------------------- likelihoods
def test_augmented_momentum_correction_matches_direct_computation() -> None:
    # Linear flow + normal base: the joint model is N(0, Σ) with Σ = S⁻¹S⁻ᵀ; compare the corrected NLL with
    # the exact q-marginal NLL plus the exact KL(N(0, I) ‖ q(p|q)), and the importance-weighted estimate with
    # the exact marginal.
    torch.manual_seed(7)
    n = 2
    layer = LinearSymplectic(n, householder=2, full=True).double()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.add_(0.15 * torch.randn_like(parameter))
    flow = Flow(CompositeTransform([layer]), canonflow.distributions.PhaseSpaceNormal(n)).double()
    s_inv = torch.linalg.inv(layer.matrix().detach())
    cov = s_inv @ s_inv.T
    cqq, cqp, cpp = cov[:n, :n], cov[:n, n:], cov[n:, n:]
    q = torch.randn(5, n, dtype=F64)
    marginal = -torch.distributions.MultivariateNormal(torch.zeros(n, dtype=F64), cqq).log_prob(q)
    gain = cqp.T @ torch.linalg.inv(cqq)
    cond_cov = cpp - gain @ cqp
    cond_mean = q @ gain.T
    kl = 0.5 * (
        torch.trace(torch.linalg.inv(cond_cov))
        + ((cond_mean @ torch.linalg.inv(cond_cov)) * cond_mean).sum(-1)
        - n
        + torch.logdet(cond_cov)
    )
    generator = torch.Generator().manual_seed(8)
    repeated = q.repeat_interleave(40000, 0)
    corrected = nll(flow, repeated, generator=generator).view(5, -1)
    torch.testing.assert_close(corrected.mean(1), marginal + kl, rtol=0, atol=4 * corrected.std(1).max() / 200)
    # the importance-weighted estimate is a stochastic upper bound that tightens towards the exact marginal
    weighted = nll(flow, q, num_momenta=100_000, importance_weighted=True, generator=generator)
    assert kl.max() > 0.5  # the conditional q(p|q) is far from N(0, I): the bound has a real gap to close
    torch.testing.assert_close(weighted, marginal, rtol=0, atol=0.03)
    # one draw by hand
    x = torch.cat([q, torch.randn(5, n, dtype=F64)], -1)
    direct = -flow.log_prob(x) - gaussian_nll(x[:, n:])
    torch.testing.assert_close(direct, -(flow.log_prob(x) + gaussian_nll(x[:, n:])))
    torch.testing.assert_close(nll(flow, x), -flow.log_prob(x))


def test_fit_density_learns_a_gaussian_from_configurations() -> None:
    torch.manual_seed(9)
    n = 2
    q = torch.randn(4000, n, dtype=F64) * torch.tensor([2.0, 0.5], dtype=F64)
    flow = PhaseSpaceFlow(n, blocks=0, linear="matrix_exp").double()
    fit = fit_density(flow, q, config=_quiet(600, 0.03, eval_every=100))
    exact = float(-torch.distributions.Normal(0.0, torch.tensor([2.0, 0.5], dtype=F64)).log_prob(q).sum(-1).mean())
    assert fit.augmented and fit.num_validation == 400
    assert abs(fit.validation_nll - exact) < 0.1


# ---------------------------------------------------------------------------------------------- latent analysis
def test_latent_frequencies_and_dependence() -> None:
    flow = PhaseSpaceFlow(2, blocks=0, linear="nak").double()
    with torch.no_grad():
        flow._distribution.log_frequency.copy_(torch.tensor([0.7, -0.2], dtype=F64))
    torch.testing.assert_close(latent_frequencies(flow), torch.tensor([-0.2, 0.7], dtype=F64).exp())
    x = flow.sample(4000).detach()
    z = flow.transform_to_noise(x).detach()
    result = latent_dependence(flow, x, {"z0": lambda x: flow.transform_to_noise(x)[:, 0]}, bins=8)
    assert int(result["z0"]["correlation"].argmax()) == 0
    assert result["z0"]["correlation"][0] > 0.999 and z.shape == (4000, 4)
    assert int(result["z0"]["mutual_information"].argmax()) == 0
    assert result["z0"]["mutual_information"][1:].max() < 0.05


# ---------------------------------------------------------------------------------------------- bad input
@pytest.fixture
def small_flow() -> PhaseSpaceFlow:
    return PhaseSpaceFlow(2, blocks=0, linear="nak").double()


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
        fit_density(small_flow, data, config=_quiet(1, 0.01))


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf")])
def test_fit_variational_rejects_bad_beta(small_flow, beta) -> None:
    energy = _gaussian_target(2)
    with pytest.raises(ValueError, match="fit_variational.*beta"):
        fit_variational(small_flow, energy, beta, config=_quiet(1, 0.01))
    with pytest.raises(ValueError, match="free_energy.*beta"):
        free_energy(small_flow, energy, beta, num_samples=10)


def test_fit_variational_rejects_bad_energy(small_flow) -> None:
    with pytest.raises(ValueError, match="fit_variational.*energy must map"):
        fit_variational(small_flow, lambda x: x, 1.0, config=_quiet(1, 0.01))
    with pytest.raises(TypeError, match="fit_variational.*callable"):
        fit_variational(small_flow, 3.0, 1.0, config=_quiet(1, 0.01))


def test_flow_round_trips_through_a_checkpoint(tmp_path, small_flow) -> None:
    from canonflow.checkpoint import save_model

    save_model(tmp_path / "model.pt", small_flow)
    loaded = canonflow.load(tmp_path / "model.pt").double()
    x = torch.randn(3, 4, dtype=F64)
    assert isinstance(loaded, Flow)
    torch.testing.assert_close(loaded.log_prob(x), small_flow.log_prob(x))


# ---------------------------------------------------------------------------------------------- gradient estimators
def _perturbed_flow(seed: int, scale: float) -> PhaseSpaceFlow:
    torch.manual_seed(seed)
    flow = PhaseSpaceFlow(1, blocks=1, hidden=8, linear="nak", full_linear=True).double()
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(scale * torch.randn_like(parameter))
    return flow


def _batch_gradients(flow: PhaseSpaceFlow, energy, gradient: str, batches: int, size: int) -> torch.Tensor:
    """``(batches, parameters)``: the estimator's gradient of the minibatch F_var on independent noise batches."""
    generator = torch.Generator().manual_seed(11)
    rows = []
    for _ in range(batches):
        noise = torch.randn(size, 2, generator=generator, dtype=F64)
        loss = variational_loss(flow, energy, noise, 1.0, gradient=gradient)
        grads = torch.autograd.grad(loss, list(flow.parameters()), allow_unused=True, materialize_grads=True)
        rows.append(torch.cat([g.flatten() for g in grads]))
    return torch.stack(rows)


def test_path_and_total_gradients_have_the_same_expectation() -> None:
    # On the same noise the two estimators differ by the score term mean(∂_θ log q_θ(x)), whose expectation is 0.
    flow = _perturbed_flow(12, 0.3)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x[:, 1] ** 2 + 0.5 * x[:, 0] ** 2 + 0.25 * x[:, 0] ** 4

    path = _batch_gradients(flow, energy, "path", 40, 2000)
    total = _batch_gradients(flow, energy, "total", 40, 2000)
    difference = path - total
    assert (difference.mean(0).abs() <= 4.5 * difference.std(0) / math.sqrt(len(difference))).all()
    assert difference.std(0).max() > 1e-3  # the score term is a real per-batch fluctuation
    mean = path.mean(0)
    assert mean.norm() > 10 * (path.std(0) / math.sqrt(len(path))).norm()  # far from the optimum: a real gradient
    # same loss value, whichever estimator
    noise = torch.randn(50, 2, generator=torch.Generator().manual_seed(13), dtype=F64)
    torch.testing.assert_close(
        variational_loss(flow, energy, noise, gradient="path"), variational_loss(flow, energy, noise, gradient="total")
    )


def test_path_gradient_variance_vanishes_at_the_optimum() -> None:
    # The target is the model itself (βH = −log q_θ*), so θ* is the optimum; near it the path estimator's
    # variance is O(|θ − θ*|²) while the total gradient keeps the score term's variance.
    target = _perturbed_flow(14, 0.3)
    for parameter in target.parameters():
        parameter.requires_grad_(False)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return -target.log_prob(x)

    at_optimum = _perturbed_flow(14, 0.3)
    path = _batch_gradients(at_optimum, energy, "path", 10, 500)
    total = _batch_gradients(at_optimum, energy, "total", 10, 500)
    assert path.abs().max() < 1e-10
    assert total.std(0).max() > 1e-2
    near = _perturbed_flow(14, 0.3)
    with torch.no_grad():
        for parameter in near.parameters():
            parameter.add_(1e-3 * torch.randn_like(parameter))
    path = _batch_gradients(near, energy, "path", 10, 500)
    total = _batch_gradients(near, energy, "total", 10, 500)
    assert path.var(0).sum() < 1e-3 * total.var(0).sum()


def test_fit_variational_rejects_an_unknown_gradient(small_flow) -> None:
    with pytest.raises(ValueError, match="fit_variational.*gradient"):
        fit_variational(small_flow, _gaussian_target(2), 1.0, config=_quiet(1, 0.01), gradient="score")
    with pytest.raises(ValueError, match="variational_loss.*gradient"):
        variational_loss(small_flow, _gaussian_target(2), torch.randn(3, 4, dtype=F64), gradient="reinforce")
