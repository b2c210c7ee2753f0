"""Action-preserving layers (canonflow/action_angle/charts/action_preserving.py): exact, canonical, conserving
the actions they should and every winding number."""

from __future__ import annotations

import math

import pytest
import torch
from layer_contract import randomize_
from randomness import fixed_manual_seed

from canonflow.action_angle import unwrap
from canonflow.action_angle.charts import (
    ActionTwist,
    ScaledAnchoredField,
    ScaledTwistField,
    action_shear_flow,
    winding_flow,
)
from canonflow.testing import assert_symplectic


def test_action_shear_is_canonical_conserves_actions_and_fixes_the_origin() -> None:
    fixed_manual_seed(0)
    flow = randomize_(action_shear_flow(3, 1, blocks=2, hidden=8).double(), scale=0.3)  # away from the identity
    x = torch.randn(32, 6, dtype=torch.float64)
    z, _ = flow(x)
    assert not torch.allclose(z, x, atol=1e-3)
    assert torch.allclose(flow.inverse(z)[0], x, atol=1e-12)
    assert_symplectic(flow, x[:4], atol=1e-12)
    q, p = z[:, :3], z[:, 3:]
    assert torch.allclose(q[:, 1:] ** 2 + p[:, 1:] ** 2, x[:, 1:3] ** 2 + x[:, 4:] ** 2, atol=1e-12)
    at_origin = x.clone()
    at_origin[:, [0, 3]] = 0.0
    with torch.no_grad():
        assert float(flow(at_origin)[0][:, [0, 3]].abs().max()) == 0.0


@pytest.mark.parametrize("scaled", [False, True])
def test_twisted_action_shear_flow_is_canonical_conserves_g_and_keeps_windings(scaled: bool) -> None:
    fixed_manual_seed(0)
    flow = randomize_(action_shear_flow(2, 1, blocks=2, hidden=8, scaled=scaled, twist=6).double(), scale=0.5)
    assert any(isinstance(layer, ActionTwist) for layer in flow._transforms)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=generator, dtype=torch.float64)
    z, _ = flow(x)
    assert not torch.allclose(z, x, atol=1e-2)
    assert torch.allclose(flow.inverse(z)[0], x, atol=1e-12)
    assert_symplectic(flow, x[:4], atol=1e-10)
    assert_symplectic(flow, x[:4], atol=1e-10, inverse=True)
    # the symmetry plane's action is conserved to rounding, the free plane's origin is fixed
    torch.testing.assert_close(z[:, 1] ** 2 + z[:, 3] ** 2, x[:, 1] ** 2 + x[:, 3] ** 2, rtol=1e-13, atol=0)
    at_origin = x.clone()
    at_origin[:, [0, 2]] = 0.0
    with torch.no_grad():
        assert float(flow(at_origin)[0][:, [0, 2]].abs().max()) == 0.0
    # loops around the origin of plane 1 (at fixed point of plane 2) keep winding once
    t = torch.linspace(0, 2 * math.pi, 400, dtype=torch.float64).unsqueeze(-1)
    loops = torch.cat([0.7 * torch.cos(t), 0.9 + 0 * t, 0.5 * torch.sin(t), 0.4 + 0 * t], -1)
    with torch.no_grad():
        q, p = flow(loops)[0].chunk(2, -1)
    angles = unwrap(torch.atan2(p, q), dim=0)
    torch.testing.assert_close((angles[-1, 0] - angles[0, 0]) / (2 * math.pi), torch.tensor(1.0).double())


@pytest.mark.parametrize("field", [ScaledAnchoredField(6), ScaledTwistField(6)])
def test_scaled_fields_are_gradients_and_the_shear_field_is_anchored(field) -> None:
    field = randomize_(field.double(), scale=0.5)
    x = torch.rand(8, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 0.3
    jacobian = torch.func.vmap(torch.func.jacrev(lambda y: field(y.unsqueeze(0))[0]))(x)
    torch.testing.assert_close(jacobian, jacobian.transpose(1, 2), rtol=0, atol=1e-12)
    if isinstance(field, ScaledAnchoredField):
        x[:, 0] = 0.0
        assert float(field(x).detach()[:, 0].abs().max()) == 0.0
    with pytest.raises(ValueError, match="scaled=True needs n = 2"):
        action_shear_flow(3, 1, blocks=1, scaled=True)


def test_winding_flow_is_canonical_and_keeps_every_plane_s_winding_numbers() -> None:
    fixed_manual_seed(0)
    flow = randomize_(winding_flow(3, blocks=2, hidden=8).double(), scale=0.5)  # away from the identity
    x = torch.randn(32, 6, dtype=torch.float64)
    z, _ = flow(x)
    assert not torch.allclose(z, x, atol=1e-2)
    assert torch.allclose(flow.inverse(z)[0], x, atol=1e-12)
    assert_symplectic(flow, x[:4], atol=1e-12)
    # circles of radii (1, 0.5, 2) turning 1, 2, 3 times: their images turn as often in the same planes
    t = torch.linspace(0, 2 * math.pi, 400, dtype=torch.float64).unsqueeze(-1)
    radius, turns = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64), torch.tensor([1.0, 2.0, 3.0])
    loops = torch.cat([radius * torch.cos(turns * t), radius * torch.sin(turns * t)], -1)
    with torch.no_grad():
        q, p = flow(loops)[0].chunk(2, -1)
    angles = unwrap(torch.atan2(p, q), dim=0)
    torch.testing.assert_close((angles[-1] - angles[0]) / (2 * math.pi), turns.double(), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="winding_flow: needs n >= 2"):
        winding_flow(1, blocks=1)
