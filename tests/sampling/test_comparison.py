"""``canonflow.sampling.comparison``: the samplers ``canonflow sample`` compares, as one library call."""

from __future__ import annotations

import pytest
import torch

from canonflow.presets import load_preset
from canonflow.sampling import Target
from canonflow.sampling.comparison import FLOWS, compare_samplers
from canonflow.training import TrainConfig

TINY = {
    "chains": 2,
    "samples": 12,
    "warmup": 50,  # long enough for two metric windows
    "train_steps": 3,
    "batch": 16,
    "blocks": 1,
    "hidden": 4,
    "importance_draws": 64,
}


def _gaussian() -> Target:
    return Target.from_potential(lambda q: 0.5 * (q**2).sum(-1), 2)


@pytest.mark.parametrize(("sampler", "metric"), [("hmc", "diag"), ("nuts", "auto")])
def test_every_sampler_runs_and_is_scored_against_the_chosen_baseline(sampler: str, metric: str) -> None:
    settings = load_preset("sample", "generic").settings(quick=True) | TINY
    settings |= {"householder": None, "linear_leapfrog": False}
    training = {flow: TrainConfig(steps=3, lr=1e-3, progress=False) for flow in FLOWS}
    torch.manual_seed(0)
    found = compare_samplers(
        _gaussian(),
        settings,
        training,
        torch.Generator().manual_seed(0),
        sampler=sampler,
        metric=metric,
        precondition="none",
    )
    assert list(found.draws) == [sampler, f"neutra_{sampler}", "flow_mcmc", "learned_leapfrog_mcmc"]
    assert found.scores[sampler][f"ess_per_evaluation_vs_{sampler}"] == 1.0
    assert all(draws.samples.shape == (12, 2, 2) for draws in found.draws.values())
    adapted = 2 if metric == "auto" else 1  # d = 2 (latent 4): "auto" adapts a dense metric
    assert found.draws[sampler].inverse_mass.dim() == found.draws[f"neutra_{sampler}"].inverse_mass.dim() == adapted
    assert set(found.flows) == set(FLOWS) == set(found.training)
    assert found.training["canonical"]["steps"] == 3 and found.training["canonical"]["importance_ess_of_64"] > 0


def test_an_unknown_sampler_is_refused_before_any_work() -> None:
    with pytest.raises(ValueError, match="compare_samplers: sampler must be one of 'hmc', 'nuts', got 'mala'"):
        compare_samplers(_gaussian(), {}, {}, torch.Generator(), sampler="mala")
    with pytest.raises(ValueError, match="compare_samplers: metric must be one of 'auto', 'diag', 'dense', got 'full'"):
        compare_samplers(_gaussian(), {}, {}, torch.Generator(), metric="full")
    with pytest.raises(ValueError, match="compare_samplers: precondition must be one of 'moments', 'laplace', 'none'"):
        compare_samplers(_gaussian(), {}, {}, torch.Generator(), precondition="whiten")
