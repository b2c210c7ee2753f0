"""Density estimation, variational free energies, estimators and the oscillator base."""

from __future__ import annotations

import math

import pytest
import torch
from layer_contract import randomize_
from nflows.flows import Flow
from nflows.transforms import CompositeTransform
from randomness import Z_SCORE, fixed_manual_seed, gen, manual_seed, t_score

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
from canonflow.distributions import OscillatorBase, OscillatorMixture
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
    generator = gen(seed)
    factor = torch.randn(2 * n, 2 * n, generator=generator, dtype=F64) / math.sqrt(2 * n)
    return QuadraticEnergy(factor @ factor.T + 0.5 * torch.eye(2 * n, dtype=F64))


def _quiet(steps: int, lr: float, **kwargs) -> TrainConfig:
    return TrainConfig(steps=steps, lr=lr, progress=False, **kwargs)


# ---------------------------------------------------------------------------------------------- oscillator base
@pytest.mark.statistical
def test_oscillator_base_log_prob_sampling_and_dtype() -> None:
    frequencies = torch.tensor([0.5, 1.0, 3.0])
    base = OscillatorBase(3, beta=2.0, frequencies=frequencies).double()
    draws = base.sample(20000)
    assert draws.dtype == F64 and draws.shape == (20000, 6)
    std = (1.0 / (2.0 * base.frequencies.detach())).sqrt().repeat(2)
    torch.testing.assert_close(draws.std(0), std, rtol=Z_SCORE / math.sqrt(2 * 20000), atol=0)  # sd of s/σ: 1/√(2N)
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
@pytest.mark.statistical
def test_linear_flow_recovers_gaussian_free_energy_exactly() -> None:
    fixed_manual_seed(0)
    n, beta = 2, 1.5
    energy = _gaussian_target(n)
    flow = PhaseSpaceFlow(n, blocks=0, linear="matrix_exp", beta=beta).double()
    fit_variational(flow, energy, beta, batch_size=256, config=_quiet(1500, 0.03))
    estimate = free_energy(flow, energy, beta, num_samples=20000, generator=gen(1))
    exact = energy.free_energy(beta)
    assert abs(estimate.variational - exact) <= 1e-3
    assert abs(estimate.importance - exact) <= 1e-3
    assert estimate.ess_fraction > 0.99


@pytest.mark.statistical
def test_importance_sampled_free_energy_is_unbiased() -> None:
    # A fixed, mismatched Gaussian proposal for a Gaussian target: F is known exactly, F_var is not.
    fixed_manual_seed(3)
    n, beta = 2, 1.0
    energy = _gaussian_target(n, seed=4)
    flow = Flow(CompositeTransform([LinearSymplectic(n)]), OscillatorBase(n, beta)).double()
    with torch.no_grad():
        flow._distribution.log_frequency.fill_(math.log(0.8))
    exact = energy.free_energy(beta)
    estimate = free_energy(flow, energy, beta, num_samples=40_000, generator=gen(5))
    assert estimate.variational > exact + 0.05  # the proposal is visibly imperfect
    assert abs(estimate.importance - exact) <= Z_SCORE * estimate.importance_stderr
    assert 0.0 < estimate.ess_fraction < 1.0
    # importance-weighted expectation of the energy: equipartition gives E[H] = (2n)/(2β) = n/β
    x, log_w = log_importance_weights(flow, energy, beta, 40_000, gen(6))
    mean, stderr, ess = importance_expectation(energy(x), log_w)
    assert abs(mean - n / beta) <= Z_SCORE * stderr and ess > 500


# ---------------------------------------------------------------------------------------------- likelihoods
@pytest.mark.statistical
def test_augmented_momentum_correction_matches_direct_computation() -> None:
    # Linear flow + normal base: the joint model is N(0, Σ) with Σ = S⁻¹S⁻ᵀ; compare the corrected NLL with
    # the exact q-marginal NLL plus the exact KL(N(0, I) ‖ q(p|q)), and the importance-weighted estimate with
    # the exact marginal.
    fixed_manual_seed(7)  # the flow and the points q are the set-up; the momenta are the Monte Carlo draws
    n = 2
    layer = randomize_(LinearSymplectic(n, householder=2, full=True).double(), 0.15, seed=7)
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
    generator = gen(8)
    repeated = q.repeat_interleave(40000, 0)
    corrected = nll(flow, repeated, generator=generator).view(5, -1)
    torch.testing.assert_close(corrected.mean(1), marginal + kl, rtol=0, atol=Z_SCORE * corrected.std(1).max() / 200)
    # the importance-weighted estimate is a stochastic upper bound that tightens towards the exact marginal
    weighted = nll(flow, q, num_momenta=100_000, importance_weighted=True, generator=generator)
    assert kl.max() > 0.5  # the conditional q(p|q) is far from N(0, I): the bound has a real gap to close
    torch.testing.assert_close(weighted, marginal, rtol=0, atol=0.03)
    # one draw by hand
    x = torch.cat([q, torch.randn(5, n, dtype=F64)], -1)
    direct = -flow.log_prob(x) - gaussian_nll(x[:, n:])
    torch.testing.assert_close(direct, -(flow.log_prob(x) + gaussian_nll(x[:, n:])))
    torch.testing.assert_close(nll(flow, x), -flow.log_prob(x))


@pytest.mark.statistical
def test_fit_density_learns_a_gaussian_from_configurations() -> None:
    manual_seed(9)
    n = 2
    q = torch.randn(40000, n, dtype=F64) * torch.tensor([2.0, 0.5], dtype=F64)
    flow = PhaseSpaceFlow(n, blocks=0, linear="matrix_exp").double()
    fit = fit_density(flow, q, config=_quiet(600, 0.03, eval_every=100))
    # the expected NLL of N(0, diag(4, 1/4)) is its entropy; a validation NLL of 4000 points scatters around it
    # with variance 2/4000 at most (per point: d/2 = 1 from q, at most 1 more from the augmenting momenta). A flow
    # that cannot rescale (a fixed N(0, I) base) is 1.1 nats off.
    exact = math.log(2.0 * 0.5) + n / 2 * (1 + math.log(2 * math.pi))
    assert fit.augmented and fit.num_validation == 4000
    assert abs(fit.validation_nll - exact) < Z_SCORE * math.sqrt(2 / fit.num_validation)


# ---------------------------------------------------------------------------------------------- latent analysis
@pytest.mark.statistical
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
    fixed_manual_seed(seed)
    return randomize_(PhaseSpaceFlow(1, blocks=1, hidden=8, linear="nak", full_linear=True).double(), scale, seed)


def _batch_gradients(flow: PhaseSpaceFlow, energy, gradient: str, batches: int, size: int) -> torch.Tensor:
    """``(batches, parameters)``: the estimator's gradient of the minibatch F_var on independent noise batches."""
    generator = gen(11)
    rows = []
    for _ in range(batches):
        noise = torch.randn(size, 2, generator=generator, dtype=F64)
        loss = variational_loss(flow, energy, noise, 1.0, gradient=gradient)
        grads = torch.autograd.grad(loss, list(flow.parameters()), allow_unused=True, materialize_grads=True)
        rows.append(torch.cat([g.flatten() for g in grads]))
    return torch.stack(rows)


@pytest.mark.statistical
def test_path_and_total_gradients_have_the_same_expectation() -> None:
    # On the same noise the two estimators differ by the score term mean(∂_θ log q_θ(x)), whose expectation is 0.
    flow = _perturbed_flow(12, 0.3)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x[:, 1] ** 2 + 0.5 * x[:, 0] ** 2 + 0.25 * x[:, 0] ** 4

    path = _batch_gradients(flow, energy, "path", 40, 2000)
    total = _batch_gradients(flow, energy, "total", 40, 2000)
    difference = path - total
    # a t-test per parameter on 40 batches
    assert (difference.mean(0).abs() <= t_score(39) * difference.std(0) / math.sqrt(len(difference))).all()
    assert difference.std(0).max() > 1e-3  # the score term is a real per-batch fluctuation
    mean = path.mean(0)
    assert mean.norm() > 10 * (path.std(0) / math.sqrt(len(path))).norm()  # far from the optimum: a real gradient
    # same loss value, whichever estimator
    noise = torch.randn(50, 2, generator=gen(13), dtype=F64)
    torch.testing.assert_close(
        variational_loss(flow, energy, noise, gradient="path"), variational_loss(flow, energy, noise, gradient="total")
    )


@pytest.mark.statistical
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
    near = randomize_(_perturbed_flow(14, 0.3), 1e-3, seed=15)
    path = _batch_gradients(near, energy, "path", 10, 500)
    total = _batch_gradients(near, energy, "total", 10, 500)
    assert path.var(0).sum() < 1e-3 * total.var(0).sum()


def test_fit_variational_rejects_an_unknown_gradient(small_flow) -> None:
    with pytest.raises(ValueError, match="fit_variational.*gradient"):
        fit_variational(small_flow, _gaussian_target(2), 1.0, config=_quiet(1, 0.01), gradient="score")
    with pytest.raises(ValueError, match="variational_loss.*gradient"):
        variational_loss(small_flow, _gaussian_target(2), torch.randn(3, 4, dtype=F64), gradient="reinforce")


# ---------------------------------------------------------------------------------------------- oscillator mixture
_CENTRES = [[1.0, -0.5], [-1.5, 0.5], [0.2, 1.2]]


def _mixture(beta: float = 1.3) -> OscillatorMixture:
    """A K = 3, n = 1 mixture with distinct centres, frequencies and weights, in float64."""
    base = OscillatorMixture(1, 3, beta=beta, centres=_CENTRES, frequencies=[1.5]).double()
    with torch.no_grad():
        base.log_frequency.copy_(torch.tensor([[0.4], [-0.3], [0.1]], dtype=F64))
        base.logits.copy_(torch.tensor([0.5, -0.4, 0.0], dtype=F64))
    return base


def _reference_mixture(base: OscillatorMixture) -> torch.distributions.Distribution:
    scale = (1.0 / (base.beta * base.frequencies.detach())).sqrt().repeat(1, 2)
    components = torch.distributions.Independent(torch.distributions.Normal(base.loc.detach(), scale), 1)
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=base.logits.detach()), components
    )


def _grid(half_width: float, points: int) -> tuple[torch.Tensor, float]:
    axis = torch.linspace(-half_width, half_width, points, dtype=F64)
    return torch.cartesian_prod(axis, axis), float(axis[1] - axis[0]) ** 2


def test_oscillator_mixture_log_prob_is_the_normalized_mixture() -> None:
    base = _mixture()
    x = torch.randn(7, 2, dtype=F64) * 2
    torch.testing.assert_close(base.log_prob(x), _reference_mixture(base).log_prob(x), rtol=1e-12, atol=1e-12)
    grid, area = _grid(10.0, 401)
    assert abs(float(base.log_prob(grid).detach().exp().sum()) * area - 1.0) < 1e-9
    one = OscillatorMixture(2, 1, beta=0.7, frequencies=[0.5, 2.0]).double()
    single = OscillatorBase(2, beta=0.7, frequencies=torch.tensor([0.5, 2.0])).double()
    y = torch.randn(5, 4, dtype=F64)
    torch.testing.assert_close(one.log_prob(y), single.log_prob(y))  # K = 1 at the origin is OscillatorBase


@pytest.mark.statistical
def test_oscillator_mixture_samples_match_its_moments() -> None:
    manual_seed(3)
    base = OscillatorMixture(2, 3, beta=2.0, radius=1.5).double()
    with torch.no_grad():
        base.log_frequency.copy_(torch.tensor([[0.3, -0.2], [0.0, 0.5], [-0.4, 0.1]], dtype=F64))
        base.logits.copy_(torch.tensor([0.7, -0.5, 0.1], dtype=F64))
    num = 40000
    draws = base.sample(num)
    assert draws.shape == (num, 4) and draws.dtype == F64
    weights = base.weights.detach()
    variance = (1.0 / (base.beta * base.frequencies.detach())).repeat(1, 2)
    loc = base.loc.detach()
    mean = (weights[:, None] * loc).sum(0)
    second = (weights[:, None] * (loc**2 + variance)).sum(0)
    for value, exact in ((draws, mean), (draws**2, second)):
        stderr = value.std(0) / math.sqrt(num)
        assert ((value.mean(0) - exact).abs() <= Z_SCORE * stderr).all(), (value.mean(0), exact, stderr)
    torch.testing.assert_close(base.mean(), mean.to(F64))
    # the stratified points: sample i from component i mod K, weights w_k B / B_k (here B = 7, K = 3)
    noise = torch.randn(7, 4, dtype=F64)
    strata = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    torch.testing.assert_close(base.from_noise(noise), loc[strata] + noise * variance[strata].sqrt())
    counts = torch.tensor([3.0, 2.0, 2.0], dtype=F64)
    torch.testing.assert_close(base.noise_weights(7), (weights * 7 / counts)[strata])


def _mixture_flow(seed: int = 5) -> PhaseSpaceFlow:
    """A linear canonical flow (n = 1) on the K = 3 mixture base, all parameters perturbed."""
    fixed_manual_seed(seed)
    flow = PhaseSpaceFlow(1, blocks=0, linear="matrix_exp", base="mixture", components=3, centres=_CENTRES)
    return randomize_(flow.double(), 0.3, seed)


def _anharmonic(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x[:, 1] ** 2 + 0.5 * x[:, 0] ** 2 + 0.1 * x[:, 0] ** 4


def _quadrature_free_energy(flow: PhaseSpaceFlow) -> torch.Tensor:
    """``F_var = ∫ q (log q + H)`` on a grid (differentiable in the flow's parameters), β = 1."""
    grid, area = _grid(9.0, 451)
    log_q = flow.log_prob(grid)
    return (log_q.exp() * (log_q + _anharmonic(grid))).sum() * area


@pytest.mark.statistical
def test_stratified_variational_loss_is_unbiased_for_the_mixture() -> None:
    flow = _mixture_flow()
    with torch.no_grad():
        exact = float(_quadrature_free_energy(flow))
        generator = gen(21)
        losses = torch.stack(
            [
                variational_loss(flow, _anharmonic, torch.randn(3001, 2, generator=generator, dtype=F64))
                for _ in range(20)
            ]
        )  # 3001 = 1001 + 1000 + 1000 samples: unequal strata
        iid = free_energy(flow, _anharmonic, 1.0, 200_000, gen(22))
    stratified_se = float(losses.std()) / math.sqrt(len(losses))
    assert abs(float(losses.mean()) - exact) < t_score(len(losses) - 1) * stratified_se + 1e-9
    assert abs(iid.variational - exact) < Z_SCORE * iid.variational_stderr
    assert abs(iid.importance - float(_reference_free_energy())) < Z_SCORE * iid.importance_stderr + 1e-4


def _reference_free_energy() -> float:
    grid, area = _grid(9.0, 451)
    return -math.log(float(torch.exp(-_anharmonic(grid)).sum()) * area)


@pytest.mark.statistical
@pytest.mark.parametrize("gradient", ["path", "total"])
def test_stratified_gradient_matches_the_exact_gradient(gradient: str) -> None:
    flow = _mixture_flow()
    parameters = list(flow.parameters())
    exact = torch.cat([g.flatten() for g in torch.autograd.grad(_quadrature_free_energy(flow), parameters)])
    generator = gen(31)
    rows = []
    for _ in range(24):
        loss = variational_loss(
            flow, _anharmonic, torch.randn(2000, 2, generator=generator, dtype=F64), gradient=gradient
        )
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, parameters)]))
    rows = torch.stack(rows)
    stderr = rows.std(0) / math.sqrt(len(rows))
    assert exact.abs().max() > 0.05  # a real gradient, in the logits too
    bound = t_score(len(rows) - 1) * stderr + 1e-8  # a t-test per parameter
    assert ((rows.mean(0) - exact).abs() <= bound).all(), (rows.mean(0), exact, stderr)
    assert exact[-3:].abs().max() > 0.01  # the logits (the last parameters) have a real gradient


@pytest.mark.statistical
def test_mixture_flow_fits_a_two_component_target() -> None:
    # a target that is itself a 2-component oscillator mixture: a linear flow on the mixture base fits it
    target = OscillatorMixture(1, 2, centres=[[1.5, 0.0], [-1.5, 0.0]]).double()
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    flow = PhaseSpaceFlow(1, blocks=0, linear="matrix_exp", base="mixture", components=2, radius=1.0).double()
    fit_variational(flow, lambda x: -target.log_prob(x), 1.0, batch_size=256, config=_quiet(300, 0.03))
    found = free_energy(flow, lambda x: -target.log_prob(x), 1.0, 20000, gen(1))
    assert abs(found.variational) < 0.01 and found.ess_fraction > 0.97


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"components": 0}, ValueError, "components"),
        ({"components": 2.5}, TypeError, "components"),
        ({"components": 2, "beta": 0.0}, ValueError, "beta"),
        ({"components": 2, "radius": -1.0}, ValueError, "radius"),
        ({"components": 2, "centres": [[0.0, 0.0, 0.0, 0.0]]}, ValueError, "centres"),
        ({"components": 2, "centres": [[0.0] * 4, [float("nan")] * 4]}, ValueError, "centres"),
        ({"components": 2, "centres": [[0.0] * 4] * 2, "radius": 1.0}, ValueError, "centres or a radius"),
        ({"components": 2, "frequencies": [1.0, -1.0]}, ValueError, "frequencies"),
        ({"components": 2, "frequencies": [1.0]}, ValueError, "frequencies"),
    ],
)
def test_oscillator_mixture_rejects_bad_arguments(kwargs, error, message) -> None:
    with pytest.raises(error, match=f"OscillatorMixture.*{message}"):
        OscillatorMixture(2, **kwargs)


def test_oscillator_mixture_rejects_bad_use() -> None:
    base = OscillatorMixture(2, 4, radius=1.0).double()
    with pytest.raises(ValueError, match="OscillatorMixture.log_prob"):
        base.log_prob(torch.randn(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="OscillatorMixture.strata.*at least K = 4"):
        base.noise_weights(3)
    with pytest.raises(ValueError, match="OscillatorMixture.from_noise.*components"):
        base.from_noise(torch.randn(2, 4, dtype=F64), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="unconditional"):
        base.sample(2, context=torch.zeros(1, 1))
    flow = PhaseSpaceFlow(2, blocks=0, base="mixture", components=4, radius=1.0).double()
    with pytest.raises(ValueError, match="strata.*at least K = 4"):
        fit_variational(flow, _gaussian_target(2), 1.0, batch_size=3, config=_quiet(1, 0.01))
    with pytest.raises(TypeError, match="latent_frequencies.*OscillatorMixture"):
        latent_frequencies(flow)
    with pytest.raises(ValueError, match="PhaseSpaceFlow.*base='mixture'"):
        PhaseSpaceFlow(2, blocks=0, components=3)
    x, log_q = canonflow.density.sample_with_log_prob(flow, 3)  # i.i.d. draws need no stratification
    torch.testing.assert_close(log_q, flow.log_prob(x))


def test_mixture_flow_round_trips_through_a_checkpoint(tmp_path) -> None:
    from canonflow.checkpoint import save_model

    flow = _mixture_flow()
    save_model(tmp_path / "model.pt", flow)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["config"]["centres"] == _CENTRES
    loaded = canonflow.load(tmp_path / "model.pt")
    assert isinstance(loaded._distribution, OscillatorMixture) and loaded.config() == flow.config()
    x = torch.randn(5, 2, dtype=F64)
    torch.testing.assert_close(loaded.log_prob(x), flow.log_prob(x))
