"""``canonflow/integrators/runge_kutta.py``: RK4 is accurate but not symplectic, and its energy drifts."""

from __future__ import annotations

import torch

from canonflow.integrators import (
    rk4,
)
from canonflow.systems import Pendulum
from integrators.common import (
    DT,
    STEPS_LONG,
    X0_OSCILLATOR,
    FastOscillator,
    defect,
    energy_error,
    explicit_euler,
    map_jacobian,
)


def test_rk4_and_explicit_euler_energy_drifts_over_2e4_steps() -> None:
    system = FastOscillator()
    tenth = STEPS_LONG // 10
    with torch.no_grad():
        for label, trajectory in (
            ("rk4", rk4(system, X0_OSCILLATOR, 0.25, STEPS_LONG, trajectory=True)),
            ("explicit euler", explicit_euler(X0_OSCILLATOR, 1e-3, STEPS_LONG)),
        ):
            error = energy_error(system, trajectory)
            early, late = error[:tenth].max().item(), error[-1].item()
            assert late >= 5.0 * early, f"{label}: energy error {early:.3e} -> {late:.3e} should drift secularly"


def test_rk4_is_not_symplectic() -> None:
    x0 = torch.tensor([[1.0, 0.3], [2.0, -0.5]], dtype=DT)
    jac = map_jacobian(lambda x: rk4(Pendulum(), x, 0.3, 5), x0)
    assert defect(jac) > 1e-6
