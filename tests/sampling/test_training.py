"""``canonflow/sampling/training.py``: ``train_sampler`` by reverse and forward KL, checkpoints, objectives."""

from __future__ import annotations

import math

import pytest
import torch
from randomness import Z_SCORE, fixed_manual_seed, gen

from canonflow import load
from canonflow.checkpoint import save_model
from canonflow.estimators import reverse_kl
from canonflow.sampling import FlowSampler, get_target, importance_resample, joint_energy, train_sampler
from canonflow.training import TrainConfig
from sampling.common import normal_potential


@pytest.mark.statistical
def test_reverse_kl_training_checkpoints_and_reloads(tmp_path):
    target = get_target("ill_gaussian", dim=2, condition=10.0)
    model = FlowSampler.leapfrog(2, steps=2, hidden=8).double()
    energy = joint_energy(model, target.potential)
    initial = float(reverse_kl(model, energy, model.base.rsample(2048, gen(14)), gradient="total").detach())
    config = TrainConfig(steps=40, lr=2e-2, progress=False, checkpoint=str(tmp_path / "ckpt.pt"), eval_every=20)
    result = train_sampler(model, target.potential, config, batch_size=64, anneal=0.25)
    assert (tmp_path / "ckpt.pt").is_file()
    log_z = 0.5 * torch.log(target.eigenvalues).sum() + target.dim * math.log(2 * math.pi)  # joint (q, p)
    assert -float(log_z) - 0.05 < result.best_validation < initial - 0.1
    save_model(tmp_path / "model.pt", model)
    again = load(tmp_path / "model.pt").double()
    x = torch.randn(4, 4, dtype=torch.float64)
    torch.testing.assert_close(again.log_prob(x), model.log_prob(x))


def two_well_potential(q: torch.Tensor) -> torch.Tensor:
    """1D mixture ``0.3 N(−2, 0.4²) + 0.7 N(2, 0.4²)``: 12.5 nats between the modes."""
    centres = q.new_tensor([-2.0, 2.0])
    log_w = q.new_tensor([math.log(0.3), math.log(0.7)])
    return -torch.logsumexp(log_w - 0.5 * (q - centres).pow(2) / 0.4**2, dim=-1)


@pytest.mark.statistical
@pytest.mark.parametrize("objective", ["reverse", "forward"])
def test_forward_kl_finds_both_modes_where_reverse_kl_collapses(objective):
    # Reverse KL collapses onto the heavier mode; the self-normalized-IS forward KL keeps both, with the right
    # weights once importance-resampled (exact up to Monte Carlo error when q covers both modes).
    fixed_manual_seed(0)
    model = FlowSampler.canonical(1, blocks=2, hidden=16).double()
    config = TrainConfig(steps=200, lr=1e-2, progress=False, grad_clip=10.0)
    train_sampler(model, two_well_potential, config, batch_size=128, objective=objective)
    resampled = importance_resample(model, two_well_potential, 20000, 4000, generator=gen(15))
    left = float((resampled.proposals[:, 0] < 0).double().mean())
    covered = 0.1 < left < 0.9
    assert covered == (objective == "forward"), left
    if covered:
        # the resampled fraction scatters by the importance estimate's error (ESS) plus the multinomial draw's
        fraction = float((resampled.samples[:, 0] < 0).double().mean())
        se = math.sqrt(0.3 * 0.7 * (1 / resampled.ess + 1 / len(resampled.samples)))
        assert abs(fraction - 0.3) < Z_SCORE * se, (fraction, resampled.ess)


def test_an_annealed_run_resumes_on_its_schedule(tmp_path):
    # β follows the step; a run stopped after one step and resumed must continue the annealing where it was
    target = get_target("ill_gaussian", dim=2, condition=10.0)
    config = TrainConfig(steps=12, lr=1e-2, progress=False, checkpoint=str(tmp_path / "state.pt"), eval_every=4)
    models = {}
    for name, options in {
        "full": {"checkpoint": None},
        "half": {"time_limit": 0.0},
        "resumed": {"resume": True},
    }.items():
        fixed_manual_seed(0)
        models[name] = FlowSampler.canonical(2, blocks=1, hidden=4).double()
        train_sampler(models[name], target.potential, TrainConfig(**{**config.__dict__, **options}), 16, anneal=1.0)
    for a, b in zip(models["full"].state_dict().values(), models["resumed"].state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_train_sampler_rejects_unknown_objective():
    model = FlowSampler.canonical(1, blocks=1, hidden=4).double()
    with pytest.raises(ValueError, match="objective"):
        train_sampler(model, normal_potential, TrainConfig(steps=1, progress=False), objective="chi2")
