"""``canonflow/density/latent.py``: latent frequencies and dependence diagnostics."""

from __future__ import annotations

import pytest
import torch
from gaussians import F64

from canonflow import CanonicalFlow
from canonflow.density import (
    latent_dependence,
    latent_frequencies,
)


@pytest.mark.statistical
def test_latent_frequencies_and_dependence() -> None:
    flow = CanonicalFlow.build(2, blocks=0, linear="nak").double()
    with torch.no_grad():
        flow.base.log_frequency.copy_(torch.tensor([0.7, -0.2], dtype=F64))
    torch.testing.assert_close(latent_frequencies(flow), torch.tensor([-0.2, 0.7], dtype=F64).exp())
    x = flow.sample(4000).detach()
    z = flow.to_latent(x).detach()
    result = latent_dependence(flow, x, {"z0": lambda x: flow.to_latent(x)[:, 0]}, bins=8)
    assert int(result["z0"]["correlation"].argmax()) == 0
    assert result["z0"]["correlation"][0] > 0.999 and z.shape == (4000, 4)
    assert int(result["z0"]["mutual_information"].argmax()) == 0
    assert result["z0"]["mutual_information"][1:].max() < 0.05
