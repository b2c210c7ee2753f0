"""``canonflow/systems/double_well.py``: the quartic double-well potential."""

from __future__ import annotations

import torch

from canonflow.systems import DoubleWell


def test_double_well_potential() -> None:
    system = DoubleWell()
    q = torch.tensor([[-1.0], [0.0], [1.0], [2.0]], dtype=torch.float64)
    assert torch.allclose(system.potential(q), torch.tensor([-0.25, 0.0, -0.25, 2.0], dtype=torch.float64))
