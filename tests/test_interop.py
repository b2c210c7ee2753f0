"""canonflow.interop: canonical layers as torch.distributions transforms, as zuko flow stages, and the docs page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import zuko
from gaussians import F64
from layer_contract import randomize_
from nflows.transforms import CompositeTransform, ReversePermutation
from randomness import fixed_manual_seed
from torch.distributions import Normal, TransformedDistribution

from canonflow import CanonicalFlow, canonical_flow
from canonflow.interop import CanonicalLazyTransform, TorchTransform, as_torch_transform
from canonflow.transforms import SymplecticComposite

DOCS = Path(__file__).resolve().parents[1] / "docs" / "interop.md"


def _layer(seed: int = 0) -> SymplecticComposite:
    """A canonical flow on n = 2 (one block), float64, every parameter moved off its initial value."""
    fixed_manual_seed(seed)
    return randomize_(canonical_flow(2, blocks=1, hidden=8, zero_center=False).double(), 0.3, seed)


def _points(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _standard_normal(dim: int) -> Normal:
    return Normal(torch.zeros(dim, dtype=F64), torch.ones(dim, dtype=F64))


# --- TorchTransform ---------------------------------------------------------------------------------------------


def test_torch_transform_is_the_layer_in_either_direction() -> None:
    layer, x = _layer(), _points(6, 4)
    to_latent, to_data = as_torch_transform(layer), as_torch_transform(layer, "inverse")
    z = layer(x)[0]
    assert torch.equal(to_latent(x), z) and torch.equal(to_latent.inv(z), layer.inverse(z)[0])
    assert torch.equal(to_data(z), layer.inverse(z)[0]) and torch.equal(to_data.inv(x), z)
    torch.testing.assert_close(to_latent.inv(to_latent(x)), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(to_data.inv(to_data(z)), z, atol=1e-12, rtol=0)
    for t in (to_latent, to_data, to_latent.inv):
        assert torch.equal(t.log_abs_det_jacobian(x, t(x)), torch.zeros(6, dtype=F64))
    assert to_latent.bijective and to_latent.domain.event_dim == to_latent.codomain.event_dim == 1
    with pytest.raises(NotImplementedError):
        to_latent.sign  # noqa: B018 (torch leaves sign undefined for multivariate transforms)


def test_leading_batch_dimensions_are_flattened_and_restored() -> None:
    layer, x = _layer(), _points(3, 5, 4)
    t = TorchTransform(layer)
    torch.testing.assert_close(t(x), layer(x.reshape(15, 4))[0].reshape(3, 5, 4), atol=0, rtol=0)
    torch.testing.assert_close(t(x[0, 0]), layer(x[0, :1])[0][0], atol=0, rtol=0)
    assert t.log_abs_det_jacobian(x, t(x)).shape == (3, 5) and t.log_abs_det_jacobian(x[0, 0], x[0, 0]).shape == ()


def test_transformed_distribution_log_prob_equals_the_canonical_flow() -> None:
    fixed_manual_seed(2)
    flow = randomize_(CanonicalFlow.build(2, blocks=1, hidden=8, base="normal").double(), 0.3, 2)
    q = TransformedDistribution(_standard_normal(4), [as_torch_transform(flow.transform, "inverse")])
    x = _points(9, 4)
    torch.testing.assert_close(q.log_prob(x), flow.log_prob(x), atol=1e-10, rtol=0)
    assert q.event_shape == (4,) and q.sample((2, 3)).shape == (2, 3, 4)


def test_rsample_gradients_reach_the_canonflow_parameters() -> None:
    layer, base = _layer(), _standard_normal(4)
    q = TransformedDistribution(base, [as_torch_transform(layer, "inverse")])
    with torch.random.fork_rng():
        torch.manual_seed(3)
        x = q.rsample((16,))
    with torch.random.fork_rng():
        torch.manual_seed(3)
        z = base.rsample((16,))
    (x**2).sum().backward()
    via_torch = [parameter.grad.clone() for parameter in layer.parameters()]
    layer.zero_grad()
    (layer.inverse(z)[0] ** 2).sum().backward()
    for got, expected in zip(via_torch, (parameter.grad for parameter in layer.parameters()), strict=True):
        assert got.abs().sum() > 0
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_cache_size_one_returns_the_cached_input() -> None:
    layer, x = _layer(), _points(4, 4)
    plain = as_torch_transform(layer)
    cached = plain.with_cache(1)
    assert cached is not plain and cached.with_cache(1) is cached and plain.with_cache(0) is plain
    assert cached.inv(cached(x)) is x and plain.inv(plain(x)) is not x
    with pytest.raises(ValueError, match=r"TorchTransform\.with_cache: expected cache_size 0 .* or 1"):
        plain.with_cache(2)


def test_bad_input_raises_a_clear_error() -> None:
    layer = _layer()
    t = as_torch_transform(layer)
    with pytest.raises(ValueError, match=r"SymplecticComposite\.forward: expected last dimension 2n = 4"):
        t(_points(3, 6))
    with pytest.raises(ValueError, match=r"SymplecticComposite\.inverse: expected last dimension 2n = 4"):
        t.inv(_points(2, 3, 6))
    with pytest.raises(TypeError, match=r"SymplecticComposite\.forward: input dtype torch\.float32 differs"):
        t(_points(3, 4).float())
    with pytest.raises(ValueError, match=r"TorchTransform\.__call__: expected a tensor of shape \(\.\.\., 2n\)"):
        t(torch.tensor(1.0, dtype=F64))
    with pytest.raises(TypeError, match=r"TorchTransform\.__call__: expected a torch\.Tensor"):
        t([[0.0] * 4])
    with pytest.raises(ValueError, match=r"TorchTransform: direction must be one of 'forward', 'inverse'"):
        TorchTransform(layer, "backward")
    with pytest.raises(ValueError, match=r"TorchTransform: expected cache_size 0"):
        TorchTransform(layer, cache_size=True)
    with pytest.raises(TypeError, match=r"TorchTransform: expected a canonical transform .* got ReversePermutation"):
        as_torch_transform(ReversePermutation(4))
    with pytest.raises(TypeError, match=r"got CompositeTransform"):
        as_torch_transform(CompositeTransform([layer, ReversePermutation(4)]))
    with pytest.raises(TypeError, match=r"got the flow CanonicalFlow; pass its \.transform"):
        as_torch_transform(CanonicalFlow.build(2, blocks=0))
    with pytest.raises(TypeError, match=r"CanonicalLazyTransform: expected a canonical transform"):
        CanonicalLazyTransform(torch.nn.Linear(4, 4))


# --- zuko -------------------------------------------------------------------------------------------------------


def _zuko_flow(seed: int = 0) -> tuple[zuko.flows.Flow, SymplecticComposite, zuko.flows.LazyTransform]:
    """``x -> MAF(T(x))`` into ``N(0, I)``: a canonical stage, then a zuko masked autoregressive stage."""
    layer = _layer(seed)
    fixed_manual_seed(seed)
    maf = zuko.flows.MaskedAutoregressiveTransform(features=4, hidden_features=(16,))
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(4), torch.ones(4), buffer=True
    )
    return zuko.flows.Flow([CanonicalLazyTransform(layer), maf], base).double(), layer, maf


def test_zuko_flow_log_prob_is_the_hand_composition() -> None:
    flow, layer, maf = _zuko_flow()
    x = _points(7, 4)
    z1 = layer(x)[0]
    stage = maf()
    z2 = stage(z1)
    expected = _standard_normal(4).log_prob(z2).sum(-1) + stage.log_abs_det_jacobian(z1, z2)
    torch.testing.assert_close(flow().log_prob(x), expected, atol=1e-10, rtol=0)
    assert isinstance(flow.transform.transforms[0], zuko.flows.LazyTransform)
    assert {id(p) for p in layer.parameters()} <= {id(p) for p in flow.parameters()}


def test_zuko_flow_trains_and_samples() -> None:
    flow, layer, _ = _zuko_flow(1)
    generator = torch.Generator().manual_seed(4)
    data = torch.randn(256, 4, generator=generator, dtype=F64) @ torch.tensor(
        [[1.5, 0.0, 0.0, 0.0], [0.8, 0.5, 0.0, 0.0], [0.0, 0.3, 1.0, 0.0], [0.2, 0.0, 0.0, 0.7]], dtype=F64
    ) + torch.tensor([1.0, -0.5, 0.0, 0.5], dtype=F64)
    before = [parameter.detach().clone() for parameter in layer.parameters()]
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = -flow().log_prob(data).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
    assert all(not torch.equal(old, new) for old, new in zip(before, layer.parameters(), strict=True))
    with torch.no_grad():
        samples = flow().sample((5,))
    assert samples.shape == (5, 4) and samples.dtype == F64 and torch.isfinite(samples).all()
    assert flow().rsample((2, 3)).shape == (2, 3, 4)


def test_a_lone_canonical_stage_and_its_inverse_work_in_zuko() -> None:
    layer, x = _layer(), _points(5, 4)
    stage = CanonicalLazyTransform(layer)
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(4, dtype=F64), torch.ones(4, dtype=F64), buffer=True
    )
    flow = zuko.flows.Flow(stage, base)  # a single lazy transform, not a list: zuko checks isinstance
    torch.testing.assert_close(flow().log_prob(x), _standard_normal(4).log_prob(layer(x)[0]).sum(-1), atol=0, rtol=0)
    assert torch.equal(stage.inv()(x), layer.inverse(x)[0]) and stage.inv.inv is stage
    assert torch.equal(CanonicalLazyTransform(layer, "inverse")()(x), layer.inverse(x)[0])
    assert torch.equal(stage(torch.zeros(5, 3))(x), layer(x)[0])  # the context is ignored


def test_the_canonical_stage_fits_a_conditional_zuko_flow() -> None:
    layer = _layer()
    fixed_manual_seed(0)
    maf = zuko.flows.MaskedAutoregressiveTransform(features=4, context=2, hidden_features=(8,))
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(4), torch.ones(4), buffer=True
    )
    flow = zuko.flows.Flow([CanonicalLazyTransform(layer), maf], base).double()
    x, c = _points(6, 4), _points(6, 2, seed=2)
    z1 = layer(x)[0]
    stage = maf(c)
    z2 = stage(z1)
    expected = _standard_normal(4).log_prob(z2).sum(-1) + stage.log_abs_det_jacobian(z1, z2)
    torch.testing.assert_close(flow(c).log_prob(x), expected, atol=1e-10, rtol=0)
    assert flow(c).sample((3,)).shape == (3, 6, 4)


# --- the documentation page -------------------------------------------------------------------------------------


def test_the_docs_page_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert len(blocks) >= 2, "docs/interop.md should have the TransformedDistribution and the zuko examples"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)
