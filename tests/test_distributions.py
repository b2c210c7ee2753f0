"""canonflow.distributions: the one base family, PhaseSpaceGaussian (normal, oscillator, mixture, diagonal)."""

from __future__ import annotations

import math

import pytest
import torch
from gaussians import CENTRES, F64, grid
from randomness import Z_SCORE, gen, manual_seed

from canonflow.distributions import PhaseSpaceGaussian


@pytest.mark.statistical
def test_oscillator_base_log_prob_sampling_and_dtype() -> None:
    frequencies = torch.tensor([0.5, 1.0, 3.0])
    base = PhaseSpaceGaussian.oscillator(3, beta=2.0, frequencies=frequencies).double()
    draws = base.sample(20000)
    assert draws.dtype == F64 and draws.shape == (20000, 6)
    std = (1.0 / (2.0 * base.frequencies[0].detach())).sqrt().repeat(2)
    torch.testing.assert_close(draws.std(0), std, rtol=Z_SCORE / math.sqrt(2 * 20000), atol=0)  # sd of s/σ: 1/√(2N)
    expected = torch.distributions.Normal(torch.zeros(6, dtype=F64), std).log_prob(draws[:5]).sum(-1)
    torch.testing.assert_close(base.log_prob(draws[:5]), expected, rtol=1e-12, atol=1e-12)
    assert base.float().sample(4).dtype == torch.float32
    with pytest.raises(ValueError, match="PhaseSpaceGaussian"):
        base.double().log_prob(torch.randn(2, 5, dtype=F64))
    with pytest.raises(ValueError, match="unconditional"):
        base.sample(2, context=torch.zeros(1, 1))
    with pytest.raises(ValueError, match="PhaseSpaceGaussian"):
        PhaseSpaceGaussian.oscillator(2, beta=0.0)
    with pytest.raises(ValueError, match="positive"):
        PhaseSpaceGaussian.oscillator(2, frequencies=torch.tensor([1.0, -1.0]))


def test_oscillator_base_normalization() -> None:
    base = PhaseSpaceGaussian.oscillator(1, beta=0.7, frequencies=torch.tensor([1.7])).double()
    axis = torch.linspace(-12, 12, 801, dtype=F64)
    q, p = torch.meshgrid(axis, axis, indexing="ij")
    density = base.log_prob(torch.stack([q.flatten(), p.flatten()], -1)).exp()
    assert abs(float(density.detach().sum()) * float(axis[1] - axis[0]) ** 2 - 1.0) < 1e-6


def _mixture(beta: float = 1.3) -> PhaseSpaceGaussian:
    """A K = 3, n = 1 mixture with distinct centres, frequencies and weights, in float64."""
    base = PhaseSpaceGaussian.mixture(1, 3, beta=beta, centres=CENTRES, frequencies=[1.5]).double()
    with torch.no_grad():
        base.log_frequency.copy_(torch.tensor([[0.4], [-0.3], [0.1]], dtype=F64))
        base.logits.copy_(torch.tensor([0.5, -0.4, 0.0], dtype=F64))
    return base


def _reference_mixture(base: PhaseSpaceGaussian) -> torch.distributions.Distribution:
    scale = (1.0 / (base.beta * base.frequencies.detach())).sqrt().repeat(1, 2)
    components = torch.distributions.Independent(torch.distributions.Normal(base.loc.detach(), scale), 1)
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=base.logits.detach()), components
    )


def test_oscillator_mixture_log_prob_is_the_normalized_mixture() -> None:
    base = _mixture()
    x = torch.randn(7, 2, dtype=F64) * 2
    torch.testing.assert_close(base.log_prob(x), _reference_mixture(base).log_prob(x), rtol=1e-12, atol=1e-12)
    points, area = grid(10.0, 401)
    assert abs(float(base.log_prob(points).detach().exp().sum()) * area - 1.0) < 1e-9
    one = PhaseSpaceGaussian.mixture(2, 1, beta=0.7, frequencies=[0.5, 2.0]).double()
    single = PhaseSpaceGaussian.oscillator(2, beta=0.7, frequencies=torch.tensor([0.5, 2.0])).double()
    y = torch.randn(5, 4, dtype=F64)
    torch.testing.assert_close(one.log_prob(y), single.log_prob(y))  # K = 1 at the origin is the oscillator
    reference = torch.distributions.Normal(0.0, (1.0 / (0.7 * torch.tensor([0.5, 2.0], dtype=F64))).sqrt().repeat(2))
    torch.testing.assert_close(single.log_prob(y), reference.log_prob(y).sum(-1))


@pytest.mark.statistical
def test_oscillator_mixture_samples_match_its_moments() -> None:
    manual_seed(3)
    base = PhaseSpaceGaussian.mixture(2, 3, beta=2.0, radius=1.5).double()
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
    noise = torch.randn(7, 4, generator=gen(4), dtype=F64)
    strata = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    stratified = base.rsample(7, gen(4), stratified=True)
    torch.testing.assert_close(stratified, loc[strata] + noise * variance[strata].sqrt())
    counts = torch.tensor([3.0, 2.0, 2.0], dtype=F64)
    torch.testing.assert_close(base.strata_weights(7), (weights * 7 / counts)[strata])


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
    with pytest.raises(error, match=f"PhaseSpaceGaussian.*{message}"):
        PhaseSpaceGaussian(2, **kwargs)


def test_standard_normal_follows_module_dtype() -> None:
    base = PhaseSpaceGaussian.standard(3).double()
    draws = base.sample(10)
    assert draws.dtype == F64 and draws.shape == (10, 6)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(draws.float()).sum(-1).double()
    torch.testing.assert_close(base.log_prob(draws), expected, rtol=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match="PhaseSpaceGaussian"):
        base.log_prob(torch.randn(2, 5, dtype=F64))
    with pytest.raises(ValueError, match="unconditional"):
        base.sample(2, context=torch.zeros(1, 1))


@pytest.mark.parametrize(
    ("make", "learned"),
    [
        (lambda: PhaseSpaceGaussian.standard(2), set()),
        (lambda: PhaseSpaceGaussian.oscillator(2), {"log_frequency"}),
        (lambda: PhaseSpaceGaussian.diagonal(2), {"loc", "log_scale"}),
        (lambda: PhaseSpaceGaussian.mixture(2, 3), {"loc", "log_frequency", "logits"}),
    ],
)
def test_learnable_groups_are_parameters_and_the_rest_buffers(make, learned) -> None:
    base = make()
    assert {name for name, _ in base.named_parameters()} == learned
    assert set(base.state_dict()) == {"loc", "logits", "log_scale" if base.scale == "coordinate" else "log_frequency"}


def test_diagonal_gaussian_log_prob_and_reparametrized_draw() -> None:
    base = PhaseSpaceGaussian.diagonal(2).double()
    with torch.no_grad():
        base.loc.copy_(torch.tensor([[0.5, -1.0, 2.0, 0.0]], dtype=F64))
        base.log_scale.copy_(torch.tensor([[0.1, -0.3, 0.7, 0.0]], dtype=F64))
    z = base.rsample(6, gen(1))
    reference = torch.distributions.Normal(base.loc[0].detach(), base.log_scale[0].detach().exp())
    torch.testing.assert_close(base.log_prob(z).detach(), reference.log_prob(z.detach()).sum(-1))
    # the draw is μ + σ ε with the noise of the generator: differentiable in μ and σ
    noise = torch.randn(6, 4, generator=gen(1), dtype=F64)
    torch.testing.assert_close(z.detach(), base.loc[0].detach() + base.log_scale[0].detach().exp() * noise)
    z.sum().backward()
    torch.testing.assert_close(base.loc.grad, torch.full((1, 4), 6.0, dtype=F64))
    torch.testing.assert_close(base.log_scale.grad[0], (base.log_scale[0].detach().exp() * noise).sum(0))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scale": "per-mode"}, ValueError, "scale"),
        ({"learnable": "loc"}, TypeError, "learnable"),
        ({"learnable": {"centre"}}, ValueError, "learnable"),
        ({"scale": "coordinate", "frequencies": [1.0, 1.0]}, ValueError, "frequencies"),
    ],
)
def test_phase_space_gaussian_rejects_bad_options(kwargs, error, message) -> None:
    with pytest.raises(error, match=f"PhaseSpaceGaussian.*{message}"):
        PhaseSpaceGaussian(2, **kwargs)


def test_log_partition_of_the_oscillator() -> None:
    base = PhaseSpaceGaussian.oscillator(2, beta=0.5, frequencies=[2.0, 3.0]).double()
    exact = sum(math.log(2 * math.pi / (0.5 * float(omega))) for omega in base.frequencies[0])
    assert abs(float(base.log_partition()) - exact) < 1e-12
    with pytest.raises(ValueError, match="log_partition"):
        PhaseSpaceGaussian.mixture(2, 2).log_partition()
