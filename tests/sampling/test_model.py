"""``canonflow/sampling/model.py``: ``FlowSampler`` options (Householder, learned momentum, point layers,
activation, linear skip), their persistence, and ``ExpAffineAutoregressive`` under the layer contract."""

from __future__ import annotations

import math

import pytest
import torch
from layer_contract import ALL_CHECKS, randomize_, run_check
from randomness import fixed_manual_seed, gen

from canonflow import load
from canonflow.checkpoint import save_model
from canonflow.sampling import ExpAffineAutoregressive, FlowSampler, flow_mcmc, get_target, neutra_hmc
from canonflow.testing import jacobian
from canonflow.transforms import PointTransform
from sampling.common import assert_moments, checked_coordinates, normal_potential


def test_householder_option_is_saved_and_reaches_every_rotation(tmp_path):
    model = FlowSampler.canonical(5, blocks=1, hidden=4, householder=4).double()
    assert model.transform.layers[0].householder == 4
    save_model(tmp_path / "model.pt", model)
    again = load(tmp_path / "model.pt").double()
    assert again.transform.layers[0].householder == 4
    leap = FlowSampler.leapfrog(5, steps=1, hidden=4, linear=True, householder=4)
    assert leap.transform.layers[0].householder == 4


@pytest.mark.statistical
def test_learned_momentum_is_a_normalized_gaussian_and_keeps_samplers_exact(tmp_path):
    # r(p | q) = N(0, diag e^{2s(q)}) with a random s: the joint potential is U(q) − log r(p | q) − (d/2) log 2π,
    # and flow-MCMC / NeuTra still sample π(q) exactly.
    target = get_target("banana")
    fixed_manual_seed(1)
    model = FlowSampler.canonical(2, blocks=1, hidden=8, momentum="learned").double()
    with torch.no_grad():
        model.base.log_scale.fill_(math.log(2.5))
        for parameter in model.momentum_log_scale.parameters():
            parameter.normal_(0.0, 0.3)
    x = torch.randn(6, 4, dtype=torch.float64)
    scale = model.momentum_log_scale(x[:, :2]).exp()
    assert scale.std() > 0.01
    log_r = torch.distributions.Normal(0.0, scale).log_prob(x[:, 2:]).sum(-1) + math.log(2 * math.pi)
    torch.testing.assert_close(model.joint_potential(target.potential, x), target.potential(x[:, :2]) - log_r)
    chain = flow_mcmc(model, target.potential, 1500, 8, generator=gen(16))
    assert_moments(*checked_coordinates("banana", chain.samples, target))
    latent = neutra_hmc(model, target.potential, 150, 16, generator=gen(17), warmup=150, num_steps=4)
    assert_moments(*checked_coordinates("banana", latent.samples, target))
    save_model(tmp_path / "model.pt", model)
    again = load(tmp_path / "model.pt")  # in the saved dtype, float64
    assert again.momentum == "learned" and next(again.parameters()).dtype == torch.float64
    torch.testing.assert_close(
        again.joint_potential(target.potential, x), model.joint_potential(target.potential, x), rtol=0, atol=0
    )
    with pytest.raises(ValueError, match="momentum"):
        FlowSampler.canonical(2, momentum="heavy")


def test_point_layers_are_exact_canonical_maps_and_reload(tmp_path):
    # Cotangent lift of an exp-scale affine autoregressive map of q: canonical, exactly invertible, autoregressive
    # in the coordinate order of q, saved and reloaded.
    from canonflow.testing import symplectic_defect

    fixed_manual_seed(2)
    model = FlowSampler.canonical(3, blocks=1, hidden=8, point=1).double()
    for parameter in model.transform.layers[0].parameters():
        torch.nn.init.normal_(parameter, 0.0, 0.3)
    x = torch.randn(5, 6, dtype=torch.float64)
    torch.testing.assert_close(model.to_data(model.to_latent(x)), x)
    assert symplectic_defect(model.transform, x).max() < 1e-10
    q_map = model.transform.layers[0].q_transform
    q = x[:, :3]
    moved = q + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(q_map(moved)[0][:, :2], q_map(q)[0][:, :2])
    assert (q_map(moved)[0][:, 2] - q_map(q)[0][:, 2]).abs().min() > 1e-3
    save_model(tmp_path / "model.pt", model)
    torch.testing.assert_close(load(tmp_path / "model.pt").to_latent(x), model.to_latent(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="point"):
        FlowSampler.leapfrog(3, point=-1)


def test_activation_of_point_and_momentum_networks_is_saved_and_checked(tmp_path):
    # "silu" (linear extrapolation into the funnel's mouth) in the point layers and the momentum network only;
    # canonical, reloaded with the same activation; tanh stays the default (older checkpoints load unchanged).
    from canonflow.testing import symplectic_defect

    fixed_manual_seed(3)
    model = FlowSampler.leapfrog(3, steps=1, hidden=8, linear=True, momentum="learned", point=1, activation="silu")
    model = model.double()
    assert FlowSampler.canonical(3, blocks=1, hidden=8).activation == "tanh"
    assert isinstance(model.momentum_log_scale.net[1], torch.nn.SiLU)
    made = model.transform.layers[0].q_transform
    assert isinstance(made.autoregressive_net.activation, torch.nn.SiLU)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, 0.0, 0.3)
    x = torch.randn(5, 6, dtype=torch.float64)
    assert symplectic_defect(model.transform, x).max() < 1e-10
    save_model(tmp_path / "model.pt", model)
    again = load(tmp_path / "model.pt")
    assert again.activation == "silu"
    potential = lambda q: 0.5 * q.pow(2).sum(-1)  # noqa: E731
    torch.testing.assert_close(again.joint_potential(potential, x), model.joint_potential(potential, x))
    torch.testing.assert_close(again.to_latent(x), model.to_latent(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="activation"):
        FlowSampler.canonical(3, activation="relu")


# ---------------------------------------------------------------------------------------------------------------
# Exact linear paths (linear_skip) in the point layers and the learned momentum scale


def skip_point_layer(n: int = 3, k: int = 3) -> PointTransform:
    fixed_manual_seed(4)
    layer = PointTransform(ExpAffineAutoregressive(n, 8, "silu", linear_skip=k), n).double()
    return randomize_(layer, scale=0.3).eval()


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("check", ALL_CHECKS)
def test_linear_skip_point_layer_meets_the_layer_contract(check, k):
    # Round trip and symplecticity to 1e-10 in float64, zero logabsdet, float32, gradients, state_dict.
    run_check(check, lambda: skip_point_layer(3, k), 3)


def test_linear_skip_point_layer_is_autoregressive_and_starts_at_the_identity():
    n = 4
    fresh = ExpAffineAutoregressive(n, 8, "silu", linear_skip=n).double()
    q = torch.randn(6, n, generator=gen(20), dtype=torch.float64)
    torch.testing.assert_close(fresh(q)[0], q, rtol=0, atol=0)
    torch.testing.assert_close(fresh.inverse(q)[0], q, rtol=0, atol=0)
    x = torch.randn(6, 2 * n, generator=gen(21), dtype=torch.float64)
    torch.testing.assert_close(PointTransform(fresh, n)(x)[0], x, rtol=0, atol=0)
    q_map = randomize_(ExpAffineAutoregressive(n, 8, "silu", linear_skip=n).double(), scale=0.3)
    with torch.no_grad():  # only the linear path: its masked-out (diagonal and upper) weights must do nothing
        q_map.autoregressive_net.final_layer.weight.zero_()
        q_map.autoregressive_net.final_layer.bias.zero_()
        q_map.linear_log_scale.fill_(0.4)
        q_map.linear_shift.fill_(-0.7)
    for k in (1, n):
        assert ExpAffineAutoregressive(n, 8, linear_skip=k).linear_log_scale.shape == (n, k)
    randomized = [randomize_(ExpAffineAutoregressive(n, 8, "silu", linear_skip=k).double(), 0.3, 5) for k in (1, n)]
    for layer in (q_map, *randomized):
        jac = jacobian(layer, q[:1])[0]
        assert jac.shape == (n, n)
        assert torch.equal(jac.triu(1), torch.zeros_like(jac))  # y_i depends on q_{≤i} only
        below = torch.ones(n, n, dtype=torch.bool).tril(-1)
        assert (jac.diagonal().abs() > 1e-3).all() and jac[below].abs().min() > 1e-6
        torch.testing.assert_close(layer.inverse(layer(q)[0])[0], q, rtol=0, atol=1e-10)
    expected = q.clone()
    for i in range(1, n):  # y_i = e^{0.4 Σ_{j<i} q_j} q_i − 0.7 Σ_{j<i} q_j
        below = q[:, :i].sum(-1)
        expected[:, i] = torch.exp(0.4 * below) * q[:, i] - 0.7 * below
    torch.testing.assert_close(q_map(q)[0], expected, rtol=1e-13, atol=1e-13)


def test_linear_skip_represents_the_funnel_whitening_exactly(tmp_path):
    # Hand-set W: x_i ↦ x_i e^{−v/2} and s_i(q) = −v/2, exactly, far beyond the bound A = 8 of the MADE's part
    # (v = 20 needs a = −10); the MADE alone (a = A tanh(â/A)) cannot. Reloads with the same outputs.
    model = FlowSampler.canonical(10, blocks=1, hidden=8, point=1, momentum="learned", linear_skip=1).double()
    q_map = model.transform.layers[0].q_transform
    with torch.no_grad():
        q_map.linear_log_scale[1:, 0] = -0.5
        model.momentum_log_scale.linear.weight[1:, 0] = -0.5
    q = torch.randn(7, 10, generator=gen(22), dtype=torch.float64)
    q[:, 0] = torch.tensor([-12.0, -6.0, -1.0, 0.0, 3.0, 11.0, 20.0], dtype=torch.float64)
    v, x = q[:, :1], q[:, 1:]
    expected = torch.cat([v, x * torch.exp(-v / 2)], dim=-1)
    torch.testing.assert_close(q_map(q)[0], expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(q_map.inverse(expected)[0], q, rtol=1e-13, atol=1e-13)
    scales = torch.cat([torch.zeros_like(v), (-v / 2).expand(-1, 9)], dim=-1)
    torch.testing.assert_close(model.momentum_log_scale(q), scales, rtol=1e-14, atol=0)
    save_model(tmp_path / "model.pt", model)
    again = load(tmp_path / "model.pt")
    assert again.linear_skip == 1 and again.config()["linear_skip"] == 1
    x_full = torch.cat([q, torch.randn(7, 10, generator=gen(23), dtype=torch.float64)], dim=-1)
    potential = get_target("funnel").potential
    torch.testing.assert_close(again.to_latent(x_full), model.to_latent(x_full), rtol=0, atol=0)
    torch.testing.assert_close(
        again.joint_potential(potential, x_full), model.joint_potential(potential, x_full), rtol=0, atol=0
    )


def test_checkpoints_without_linear_skip_load_without_the_linear_path(tmp_path):
    # Checkpoints written before the option have no "linear_skip" in their config: no linear path, same weights.
    fixed_manual_seed(6)
    model = FlowSampler.canonical(3, blocks=1, hidden=8, point=1, momentum="learned").double()
    assert model.linear_skip == 0
    randomize_(model, 0.3)
    save_model(tmp_path / "model.pt", model)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    del payload["config"]["linear_skip"]
    torch.save(payload, tmp_path / "old.pt")
    old = load(tmp_path / "old.pt")
    assert old.linear_skip == 0 and old.transform.layers[0].q_transform.linear_skip == 0
    x = torch.randn(5, 6, dtype=torch.float64)
    torch.testing.assert_close(old.to_latent(x), model.to_latent(x), rtol=0, atol=0)
    torch.testing.assert_close(
        old.joint_potential(normal_potential, x), model.joint_potential(normal_potential, x), rtol=0, atol=0
    )
    for bad in (True, -1, 4):
        with pytest.raises(ValueError, match="linear_skip"):
            FlowSampler.canonical(3, linear_skip=bad)
