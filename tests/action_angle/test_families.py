"""Samplers of single orbit families (canonflow/action_angle/families.py)."""

from __future__ import annotations

import pytest
import torch

from canonflow.action_angle import ActionAngleFlow, evaluate, unwrap
from canonflow.action_angle.charts import normal_mode_chart
from canonflow.action_angle.families import toda_loop_orbits
from canonflow.data import trajectories
from canonflow.systems import CentreOfMassFrame, Toda


@pytest.mark.xdist_group("toda_birkhoff_spec")  # one worker builds the session fixture once
def test_toda_loop_orbits_keep_their_sense_and_the_birkhoff_chart_conserves_their_actions(toda_birkhoff_spec) -> None:
    """Loops of one sense: the normal-mode chart's small polarization winds anomalously on some of them and its
    actions vary by 10–30 %; the degree-4 normalized chart winds every plane once per loop with actions
    conserved to ~1e-2 (to ~3e-3 at degree 5), before any training."""
    system = CentreOfMassFrame(Toda(3, periodic=True))
    initial = toda_loop_orbits(system, 24, torch.Generator().manual_seed(0))
    assert initial.shape == (24, 4)
    # tolerance 1e-10 instead of 1e-12 (40 % cheaper): integration errors far below the 1e-2 checked here
    data = trajectories(system, 24, (15.0, 200), initial=initial, rtol=1e-10, atol=1e-10)
    plain = ActionAngleFlow(2, chart=normal_mode_chart(system, [0.0] * 4, circular=[(0, 1)]), blocks=0, householder=0)
    with torch.no_grad():
        actions = plain.to_action_angle(data.states)[0]
    assert bool((actions[..., 0] > actions[..., 1]).all())
    normalized = ActionAngleFlow(2, chart=toda_birkhoff_spec, blocks=0, householder=0)
    before = evaluate(plain, data.states, data.times)["action_conservation"]
    after = evaluate(normalized, data.states, data.times)
    assert max(after["action_conservation"]) < 0.04 and max(before) > 0.15
    with torch.no_grad():
        angles = unwrap(normalized.to_action_angle(data.states)[1], dim=1)
    turns = angles[:, -1] - angles[:, 0]
    torch.testing.assert_close(turns[:, 1] / turns[:, 0], torch.ones(24, dtype=torch.float64), rtol=0, atol=0.15)
    assert min(after["angle_r2"]) > 0.9999
    # the other sense over the 15 time units checked here (the default horizon of 60 is exercised above): the
    # same four orbits as with the default, found in a quarter of the integration time
    negative = toda_loop_orbits(system, 4, torch.Generator().manual_seed(0), sense=-1, horizon=15.0)
    data = trajectories(system, 4, (15.0, 200), initial=negative, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        actions = plain.to_action_angle(data.states)[0]
    assert bool((actions[..., 0] < actions[..., 1]).all())
    with pytest.raises(ValueError, match="CentreOfMassFrame"):
        toda_loop_orbits(CentreOfMassFrame(Toda(4, periodic=True)), 4)
    with pytest.raises(ValueError, match="sense"):
        toda_loop_orbits(system, 4, sense=0)
