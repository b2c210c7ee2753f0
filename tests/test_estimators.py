"""canonflow.estimators: reverse KL (path and total gradients, stratified mixtures), importance weights, F_IS."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from gaussians import CENTRES, gaussian_target, grid
from layer_contract import randomize_
from nflows.transforms import CompositeTransform
from randomness import Z_SCORE, fixed_manual_seed, gen, t_score

import canonflow
from canonflow import CanonicalFlow
from canonflow.distributions import PhaseSpaceGaussian
from canonflow.estimators import forward_kl, free_energy, importance_expectation, log_importance_weights, reverse_kl
from canonflow.systems import get_system
from canonflow.transforms import LinearSymplectic


@pytest.mark.statistical
def test_importance_sampled_free_energy_is_unbiased() -> None:
    # A fixed, mismatched Gaussian proposal for a Gaussian target: F is known exactly, F_var is not.
    fixed_manual_seed(3)
    n, beta = 2, 1.0
    energy = gaussian_target(n, seed=4)
    flow = CanonicalFlow(CompositeTransform([LinearSymplectic(n)]), PhaseSpaceGaussian.oscillator(n, beta)).double()
    with torch.no_grad():
        flow.base.log_frequency.fill_(math.log(0.8))
    exact = energy.free_energy(beta)
    estimate = free_energy(flow, energy, beta, num_samples=40_000, generator=gen(5))
    assert estimate.variational > exact + 0.05  # the proposal is visibly imperfect
    assert abs(estimate.importance - exact) <= Z_SCORE * estimate.importance_stderr
    assert 0.0 < estimate.ess_fraction < 1.0
    # importance-weighted expectation of the energy: equipartition gives E[H] = (2n)/(2β) = n/β
    x, log_w = log_importance_weights(flow, energy, beta, 40_000, gen(6))
    mean, stderr, ess = importance_expectation(energy(x), log_w)
    assert abs(mean - n / beta) <= Z_SCORE * stderr and ess > 500


def _reverse_kl(flow: CanonicalFlow, energy, size: int, generator: torch.Generator, gradient: str) -> torch.Tensor:
    """The minibatch reverse KL at β = 1 on a stratified draw of ``size`` (weighted for a mixture base)."""
    z = flow.base.rsample(size, generator, stratified=True)
    weights = flow.base.strata_weights(size) if flow.base.components > 1 else None
    return reverse_kl(flow, energy, z, 1.0, weights=weights, gradient=gradient)


def _perturbed_flow(seed: int, scale: float) -> CanonicalFlow:
    fixed_manual_seed(seed)
    return randomize_(CanonicalFlow.build(1, blocks=1, hidden=8, linear="nak", full_linear=True).double(), scale, seed)


def _batch_gradients(flow: CanonicalFlow, energy, gradient: str, batches: int, size: int) -> torch.Tensor:
    """``(batches, parameters)``: the estimator's gradient of the minibatch F_var on independent noise batches."""
    generator = gen(11)
    rows = []
    for _ in range(batches):
        loss = _reverse_kl(flow, energy, size, generator, gradient)
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
    z = flow.base.rsample(50, gen(13))
    torch.testing.assert_close(
        reverse_kl(flow, energy, z, gradient="path"), reverse_kl(flow, energy, z, gradient="total")
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


def _mixture_flow(seed: int = 5) -> CanonicalFlow:
    """A linear canonical flow (n = 1) on the K = 3 mixture base, all parameters perturbed."""
    fixed_manual_seed(seed)
    flow = CanonicalFlow.build(1, blocks=0, linear="matrix_exp", base="mixture", components=3, centres=CENTRES)
    return randomize_(flow.double(), 0.3, seed)


def _anharmonic(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x[:, 1] ** 2 + 0.5 * x[:, 0] ** 2 + 0.1 * x[:, 0] ** 4


def _quadrature_free_energy(flow: CanonicalFlow) -> torch.Tensor:
    """``F_var = ∫ q (log q + H)`` on a grid (differentiable in the flow's parameters), β = 1."""
    points, area = grid(9.0, 451)
    log_q = flow.log_prob(points)
    return (log_q.exp() * (log_q + _anharmonic(points))).sum() * area


@pytest.mark.statistical
def test_stratified_variational_loss_is_unbiased_for_the_mixture() -> None:
    flow = _mixture_flow()
    with torch.no_grad():
        exact = float(_quadrature_free_energy(flow))
        generator = gen(21)
        losses = torch.stack(
            [_reverse_kl(flow, _anharmonic, 3001, generator, "path") for _ in range(20)]
        )  # 3001 = 1001 + 1000 + 1000 samples: unequal strata
        iid = free_energy(flow, _anharmonic, 1.0, 200_000, gen(22))
    stratified_se = float(losses.std()) / math.sqrt(len(losses))
    assert abs(float(losses.mean()) - exact) < t_score(len(losses) - 1) * stratified_se + 1e-9
    assert abs(iid.variational - exact) < Z_SCORE * iid.variational_stderr
    assert abs(iid.importance - float(_reference_free_energy())) < Z_SCORE * iid.importance_stderr + 1e-4


def _reference_free_energy() -> float:
    points, area = grid(9.0, 451)
    return -math.log(float(torch.exp(-_anharmonic(points)).sum()) * area)


@pytest.mark.statistical
@pytest.mark.parametrize("gradient", ["path", "total"])
def test_stratified_gradient_matches_the_exact_gradient(gradient: str) -> None:
    flow = _mixture_flow()
    parameters = list(flow.parameters())
    exact = torch.cat([g.flatten() for g in torch.autograd.grad(_quadrature_free_energy(flow), parameters)])
    generator = gen(31)
    rows = []
    for _ in range(24):
        loss = _reverse_kl(flow, _anharmonic, 2000, generator, gradient)
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, parameters)]))
    rows = torch.stack(rows)
    stderr = rows.std(0) / math.sqrt(len(rows))
    assert exact.abs().max() > 0.05  # a real gradient, in the logits too
    bound = t_score(len(rows) - 1) * stderr + 1e-8  # a t-test per parameter
    assert ((rows.mean(0) - exact).abs() <= bound).all(), (rows.mean(0), exact, stderr)
    assert exact[-3:].abs().max() > 0.01  # the logits (the last parameters) have a real gradient


RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"


@pytest.mark.parametrize(
    ("name", "system"), [("free_energy_ring2d", "ring2d"), ("free_energy_harmonic_chain", "harmonic_chain")]
)
def test_committed_free_energies_are_reproduced(name: str, system: str) -> None:
    # The reference runs' models (version-1 files of the flow before the one-flow reshape) give their published
    # F_var and F_IS again: the same 200,000 draws (the run's seed + 10), the same estimator, to round-off.
    metrics = json.loads((RESULTS / name / "metrics.json").read_text())
    published = metrics["results"]["models"]["canonflow"]
    model = canonflow.load(RESULTS / name / "model.pt")
    generator = torch.Generator().manual_seed(metrics["seed"] + 10)
    found = free_energy(model, get_system(system), metrics["results"]["beta"], published["num_samples"], generator)
    assert abs(found.variational - published["variational"]) < 1e-12
    assert abs(found.importance - published["importance"]) < 1e-12
    assert abs(found.ess - published["ess"]) < 1e-6 * published["ess"]


def test_forward_kl_leaves_out_draws_that_overflowed() -> None:
    # A draw x with a non-finite entry (an overflowing flow) has weight 0 and must not make the loss 0 · NaN.
    fixed_manual_seed(0)
    model = CanonicalFlow.build(2, blocks=1, hidden=4, base="diagonal").double()

    def energy(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.pow(2).sum(-1)

    x, log_q = model.sample_and_log_prob(8, gen(24))
    x, log_q = x.detach(), log_q.detach()
    bad = x.clone()
    bad[3] = torch.tensor([math.inf, 0.0, math.nan, 1.0], dtype=torch.float64)
    model.sample_and_log_prob = lambda num, generator=None: (bad, log_q)
    loss = forward_kl(model, energy, 8)
    keep = torch.arange(8) != 3
    expected = -(torch.softmax(-energy(x[keep]) - log_q[keep], 0) * model.log_prob(x[keep])).sum()
    torch.testing.assert_close(loss, expected)
