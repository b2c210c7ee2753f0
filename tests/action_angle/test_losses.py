"""The action-angle losses (canonflow/action_angle/losses.py) and their composition (canonflow/losses.py):
each vanishes on the exact action-angle map and penalizes wrong ones; sums add their terms; fits with each
term learn the oscillator (``statistical``: fixed data and weights, see ``tests/randomness.py``)."""

from __future__ import annotations

import math

import pytest
import torch
from randomness import fixed_manual_seed

from action_angle.oscillators import OSCILLATOR, TIMES, fit_oscillator, oscillator_charts, oscillator_data
from canonflow.action_angle import (
    ActionAngleFlow,
    ActionLoss,
    AngleLoss,
    HamiltonianLoss,
    NormalFormLoss,
    TrajectoryBatch,
    TrajectoryLoss,
    evaluate,
    make_loss,
)
from canonflow.action_angle.charts import normal_mode_chart
from canonflow.losses import Loss
from canonflow.systems import CalogeroMoser, HarmonicOscillator


def _combined(model: ActionAngleFlow, data: torch.Tensor, weight: float = 1.0) -> float:
    """Circle + angle + ``weight`` · Hamiltonian loss, with 16 angles per torus drawn with seed 3."""
    loss = TrajectoryLoss() + AngleLoss() + weight * HamiltonianLoss(OSCILLATOR, num_angles=16)
    with torch.no_grad():
        return float(loss(model, TrajectoryBatch(data, seed=3)))


def test_summed_losses_vanish_on_the_exact_action_angle_map() -> None:
    """The oscillator's normal-mode chart is its exact action-angle map: the circle, angle and Hamiltonian terms
    all vanish; the identity (ellipses, since ω ≠ 1) is penalized by each of them."""
    data = oscillator_data(0, 16)
    exact = ActionAngleFlow(2, chart=normal_mode_chart(OSCILLATOR, [0.0] * 4), blocks=0, householder=0)
    assert _combined(exact, data) < 1e-20
    identity = ActionAngleFlow(2, blocks=0, householder=0)
    with torch.no_grad():
        assert float(HamiltonianLoss(OSCILLATOR, num_angles=16)(identity, TrajectoryBatch(data, seed=3))) > 1e-2
    assert _combined(identity, data) > 1e-2


@pytest.mark.statistical
def test_fit_with_the_hamiltonian_term_lowers_the_summed_loss() -> None:
    fixed_manual_seed(0)
    data = oscillator_data(0, 64)
    model = ActionAngleFlow(2, blocks=0)
    before = _combined(model, data)
    result = model.fit(
        data,
        TIMES,
        loss=TrajectoryLoss() + HamiltonianLoss(OSCILLATOR, num_angles=8),
        batch_size=32,
        polish_steps=2,
        steps=200,
        lr=3e-2,
        progress=False,
    )
    assert math.isfinite(result.best_validation)
    assert _combined(model, data) < before / 100


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: HamiltonianLoss("H"), TypeError, "HamiltonianLoss: expected a callable hamiltonian"),
        (lambda: HamiltonianLoss(OSCILLATOR, num_angles=1), ValueError, "HamiltonianLoss: num_angles"),
        (lambda: HamiltonianLoss(OSCILLATOR, num_angles=0), ValueError, "HamiltonianLoss: expected num_angles"),
        (lambda: -1.0 * AngleLoss(), ValueError, "AngleLoss: a loss weight must be a finite number >= 0"),
        (lambda: math.inf * AngleLoss(), ValueError, "a loss weight must be a finite number >= 0"),
        (lambda: True * AngleLoss(), ValueError, "a loss weight must be a finite number >= 0"),
        (lambda: math.nan * (TrajectoryLoss() + AngleLoss()), ValueError, "LossSum: a loss weight must be"),
        (lambda: NormalFormLoss(OSCILLATOR, None), TypeError, "NormalFormLoss: needs callables hamiltonian"),
        (lambda: ActionLoss("I"), TypeError, "ActionLoss: needs a callable actions"),
        (lambda: TrajectoryLoss("median"), ValueError, "TrajectoryLoss: normalization must be one of"),
        (lambda: make_loss(normal_form_weight=1.0), ValueError, "make_loss: terms other than"),
        (lambda: make_loss(OSCILLATOR, action_weight=-1.0), ValueError, "make_loss: every weight must be"),
    ],
)
def test_bad_loss_terms_are_refused_by_name(make, error, message) -> None:
    with pytest.raises(error, match=message):
        make()


def test_losses_compose_as_values() -> None:
    """``+`` concatenates weighted terms in order, ``*`` scales every weight, a weight-0 term is not evaluated and
    does not make a sum inseparable; ``make_loss`` writes a preset's weights as the same sum."""
    loss = TrajectoryLoss() + 0.5 * (AngleLoss() + 2 * HamiltonianLoss(OSCILLATOR, num_angles=8))
    assert [weight for weight, _ in loss.terms()] == [1.0, 0.5, 1.0]
    assert repr(loss) == (
        "TrajectoryLoss(normalization='spread') + 0.5 * AngleLoss() + HamiltonianLoss(hamiltonian="
        f"{OSCILLATOR!r}, num_angles=8)"
    )
    assert not loss.separable and (TrajectoryLoss("mean") + AngleLoss()).separable
    assert not TrajectoryLoss("across").separable

    class Exploding(Loss):
        def __call__(self, model: object, batch: object) -> torch.Tensor:
            raise AssertionError("a term of weight 0 is evaluated")

    data = oscillator_data(0, 4)
    model = ActionAngleFlow(2, blocks=0)
    with torch.no_grad():
        assert float((TrajectoryLoss() + 0 * Exploding())(model, data)) == float(TrajectoryLoss()(model, data))
    assert (TrajectoryLoss() + 0 * Exploding()).separable
    expected = TrajectoryLoss() + NormalFormLoss(OSCILLATOR.hamiltonian, OSCILLATOR.action_hamiltonian)
    assert repr(make_loss(OSCILLATOR, normal_form_weight=1.0)) == repr(expected)
    assert repr(make_loss(OSCILLATOR)) == repr(TrajectoryLoss())


def test_normal_form_loss_vanishes_exactly_on_the_action_angle_map() -> None:
    """On the oscillator's exact chart ``H = Σ ω_k I_k`` at every point; the identity (ellipses), the chart with
    its planes swapped (wrong frequencies) and a sheared chart are all penalized."""
    points = oscillator_data(0, 16).reshape(-1, 4)
    exact, identity, sheared = oscillator_charts()
    with torch.no_grad():
        loss = NormalFormLoss(OSCILLATOR, OSCILLATOR.action_hamiltonian)
        assert float(loss(exact, points)) < 1e-28
        swapped = HarmonicOscillator(2, omega=[1.7, 1.0]).action_hamiltonian
        for wrong in (swapped, lambda actions: 1.1 * OSCILLATOR.action_hamiltonian(actions)):
            assert float(NormalFormLoss(OSCILLATOR, wrong)(exact, points)) > 1e-3
        assert float(loss(identity, points)) > 1e-2
        assert float(loss(sheared, points)) > 1e-4


@pytest.mark.statistical
@pytest.mark.parametrize(("omega", "matched"), [([1.0, 1.7], [0, 1])])
def test_fit_with_the_normal_form_term_learns_the_oscillator(omega: list[float], matched: list[int]) -> None:
    """``K`` fixes which latent plane carries which oscillator. Only the order the identity start already has is
    asserted: with ``omega = [1.7, 1.0]`` the fit swapped the planes on the original data seed but stayed in the
    unswapped basin (action conservation 3e-3 to 2e-2) on three of three shifted seeds (``tests/seed_sweep.py``),
    so reordering from the identity is not something this loss reliably does."""
    model = fit_oscillator(
        TrajectoryLoss() + NormalFormLoss(OSCILLATOR, HarmonicOscillator(2, omega=omega).action_hamiltonian)
    )
    test = oscillator_data(1, 16)
    metrics = evaluate(model, test, TIMES, OSCILLATOR, OSCILLATOR.frequencies(test[:, 0]))
    assert max(metrics["action_conservation"]) < 1e-4
    assert max(metrics["frequency_error"]) < 1e-3
    assert metrics["frequency_matched"] == matched


def test_action_loss_vanishes_exactly_on_the_action_angle_map() -> None:
    """On the oscillator's exact chart the learned actions are ``E_k/ω_k`` at every point; the identity, the
    chart with its planes swapped and a sheared chart are all penalized."""
    points = oscillator_data(0, 16).reshape(-1, 4)
    exact, identity, sheared = oscillator_charts()
    with torch.no_grad():
        loss = ActionLoss(OSCILLATOR.actions)
        assert float(loss(exact, points)) < 1e-28
        assert float(ActionLoss(lambda x: OSCILLATOR.actions(x).flip(-1))(exact, points)) > 1e-2
        assert float(loss(identity, points)) > 1e-2
        assert float(loss(sheared, points)) > 1e-4


def test_a_sum_of_losses_takes_the_hamiltonian_and_action_terms_together() -> None:
    """Each term adds its own loss: on the exact chart every term vanishes, on the identity each is positive."""
    batch = TrajectoryBatch(oscillator_data(0, 8))
    without = TrajectoryLoss() + HamiltonianLoss(OSCILLATOR, num_angles=4)
    with_actions = without + ActionLoss(OSCILLATOR.actions)
    exact, identity, _ = oscillator_charts()
    with torch.no_grad():
        assert float(with_actions(exact, batch)) < 1e-20
        alone = float(ActionLoss(OSCILLATOR.actions)(identity, batch.states.reshape(-1, 4)))
        together = float(with_actions(identity, batch))
        without = float(without(identity, batch))
    assert alone > 1e-2
    assert together == pytest.approx(without + alone, rel=1e-12)


@pytest.mark.statistical
def test_fit_with_known_actions_learns_the_oscillator_chart() -> None:
    """With the exact actions as targets the learned actions match them, not only their conservation."""
    model = fit_oscillator(TrajectoryLoss() + ActionLoss(OSCILLATOR.actions))
    test = oscillator_data(1, 16)
    metrics = evaluate(model, test, TIMES, OSCILLATOR, OSCILLATOR.frequencies(test[:, 0]))
    assert max(metrics["action_conservation"]) < 1e-4
    with torch.no_grad():
        learned = 0.5 * model.radii(test[:, 0])
    torch.testing.assert_close(learned, OSCILLATOR.actions(test[:, 0]), rtol=1e-4, atol=0.0)


def test_calogero_moser_action_hamiltonian_is_linear_with_the_ground_energy() -> None:
    system = CalogeroMoser(3, omega=1.5, g=0.7)
    ground = float(system.hamiltonian(system.equilibrium()[None]))
    assert system.ground_energy() == pytest.approx(ground, rel=1e-14)
    actions = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(
        system.action_hamiltonian(actions), torch.tensor([ground, ground + 1.5 * (1.0 + 1.0 + 0.75)]).double()
    )
    message = r"CalogeroMoser \('calogero_moser'\)\.action_hamiltonian: expected actions of shape \(B, n\) = \(B, 3\)"
    with pytest.raises(ValueError, match=message):
        system.action_hamiltonian(torch.zeros(2, 2))
    message = r"HarmonicOscillator \('oscillator'\)\.action_hamiltonian: expected actions of shape \(B, n\) = \(B, 2\)"
    with pytest.raises(ValueError, match=message):
        OSCILLATOR.action_hamiltonian(torch.zeros(3))
