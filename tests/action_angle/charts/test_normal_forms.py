"""Birkhoff normal-form charts (canonflow/action_angle/charts/normal_forms.py)."""

from __future__ import annotations

import math

import pytest
import torch

from canonflow.action_angle import ActionAngleFlow
from canonflow.action_angle.charts import BirkhoffChart, birkhoff_chart, taylor_part
from canonflow.systems import CalogeroMoser, CentreOfMassFrame, HarmonicOscillator, Toda
from canonflow.testing import assert_symplectic


@pytest.mark.xdist_group("toda_birkhoff_spec")  # one worker builds the session fixture once
def test_birkhoff_chart_is_exact_canonical_and_normalizes_toda_to_degree_4(toda_birkhoff_spec) -> None:
    system = CentreOfMassFrame(Toda(3, periodic=True))
    chart = BirkhoffChart(**{key: value for key, value in toda_birkhoff_spec.items() if key != "name"})
    x = 0.5 * torch.randn(32, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z, _ = chart(x)
    torch.testing.assert_close(chart.inverse(z)[0], x, rtol=0, atol=1e-12)
    torch.testing.assert_close(chart(chart.inverse(x)[0])[0], x, rtol=0, atol=1e-12)
    assert_symplectic(chart, x, atol=1e-10)
    assert_symplectic(chart, x, atol=1e-10, inverse=True)
    energy = lambda y: system.hamiltonian(chart.inverse(y)[0])  # noqa: E731
    y = torch.randn(16, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    quadratic = taylor_part(energy, y, 2)
    torch.testing.assert_close(quadratic, 0.5 * 3**0.5 * y.pow(2).sum(-1), rtol=1e-10, atol=1e-12)
    assert float(taylor_part(energy, y, 3).abs().max()) < 1e-10 * float(quadratic.abs().max())
    # degree 4: only resonant terms stay, i.e. the part is invariant under the flow of H₂ (a common rotation)
    q, p = y.chunk(2, -1)
    turned = torch.cat([q * math.cos(1.0) + p * math.sin(1.0), p * math.cos(1.0) - q * math.sin(1.0)], -1)
    quartic = taylor_part(energy, y, 4)
    torch.testing.assert_close(taylor_part(energy, turned, 4), quartic, rtol=1e-9, atol=1e-12)
    model = ActionAngleFlow(2, chart=toda_birkhoff_spec, blocks=0, householder=0)
    loaded = ActionAngleFlow.from_config(model.config())
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_birkhoff_chart_normalizes_the_resonant_calogero_moser_equilibrium() -> None:
    """Frequencies 1, 2, 3 (integer multiples): the degree-3 chart leaves no cubic term at all, the resonant
    ones (``z₁² z̄₂``, ``z₁ z₂ z̄₃``) included, as an isochronous system with ``K = E₀ + Σ k I_k`` must."""
    system = CalogeroMoser(3)
    spec = birkhoff_chart(system, system.equilibrium(), order=3)
    chart = BirkhoffChart(**{key: value for key, value in spec.items() if key != "name"})
    x = system.sample_initial(16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(chart.inverse(chart(x)[0])[0], x, rtol=0, atol=1e-12)
    assert_symplectic(chart, x, atol=1e-10)
    energy = lambda y: system.hamiltonian(chart.inverse(y)[0])  # noqa: E731
    y = torch.randn(16, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    quadratic = taylor_part(energy, y, 2)
    frequencies = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(quadratic, 0.5 * (frequencies * y * y).sum(-1), rtol=1e-9, atol=1e-12)
    assert float(taylor_part(energy, y, 3).abs().max()) < 1e-9 * float(quadratic.abs().max())


def test_birkhoff_chart_refuses_unequal_frequencies_and_bad_generators() -> None:
    with pytest.raises(ValueError, match="not integer multiples of the lowest"):
        birkhoff_chart(HarmonicOscillator(2, omega=[1.0, 1.5]), [0.0] * 4)
    with pytest.raises(ValueError, match="order >= 2"):
        birkhoff_chart(HarmonicOscillator(2, omega=1.0), [0.0] * 4, order=1)
    eye = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="exactly 'power'"):
        BirkhoffChart([0.0] * 4, eye, [{"power": 3, "directions": [[1.0, 0, 0, 0]]}])
    with pytest.raises(ValueError, match="as many directions"):
        BirkhoffChart([0.0] * 4, eye, [{"power": 3, "directions": [[1.0, 0, 0, 0]], "coefficients": [1.0, 2.0]}])
    with pytest.raises(ValueError, match="power >= 2"):
        BirkhoffChart([0.0] * 4, eye, [{"power": 1, "directions": [[1.0, 0, 0, 0]], "coefficients": [1.0]}])
