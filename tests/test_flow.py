"""canonflow.flow: CanonicalFlow (one-pass draws, build, save and load, version-1 files)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gaussians import CENTRES, F64
from layer_contract import randomize_
from randomness import fixed_manual_seed, gen

import canonflow
from canonflow import CanonicalFlow
from canonflow.distributions import PhaseSpaceGaussian
from canonflow.transforms import LinearSymplectic


@pytest.fixture
def small_flow() -> CanonicalFlow:
    return CanonicalFlow.build(2, blocks=0, linear="nak").double()


def test_flow_round_trips_through_a_checkpoint(tmp_path, small_flow) -> None:
    from canonflow.checkpoint import save_model

    save_model(tmp_path / "model.pt", small_flow)
    loaded = canonflow.load(tmp_path / "model.pt").double()
    x = torch.randn(3, 4, dtype=F64)
    assert isinstance(loaded, CanonicalFlow)
    torch.testing.assert_close(loaded.log_prob(x), small_flow.log_prob(x))


def _mixture_flow(seed: int = 5) -> CanonicalFlow:
    """A linear canonical flow (n = 1) on the K = 3 mixture base, all parameters perturbed."""
    fixed_manual_seed(seed)
    flow = CanonicalFlow.build(1, blocks=0, linear="matrix_exp", base="mixture", components=3, centres=CENTRES)
    return randomize_(flow.double(), 0.3, seed)


def test_mixture_flow_round_trips_through_a_checkpoint(tmp_path) -> None:
    from canonflow.checkpoint import save_model

    flow = _mixture_flow()
    save_model(tmp_path / "model.pt", flow)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["config"]["centres"] == CENTRES
    loaded = canonflow.load(tmp_path / "model.pt")
    assert loaded.base.components == 3 and loaded.config() == flow.config()
    x = torch.randn(5, 2, dtype=F64)
    torch.testing.assert_close(loaded.log_prob(x), flow.log_prob(x))


@pytest.mark.parametrize("base", ["oscillator", "normal", "diagonal", "mixture"])
def test_one_pass_draw_matches_log_prob_and_to_data(base: str) -> None:
    fixed_manual_seed(3)
    flow = randomize_(CanonicalFlow.build(2, blocks=1, hidden=8, base=base).double(), 0.2, seed=3)
    x, log_q = flow.sample_and_log_prob(16, gen(2))
    assert x.shape == (16, 4) and log_q.shape == (16,)
    torch.testing.assert_close(log_q, flow.log_prob(x), rtol=0, atol=1e-10)
    z = flow.base.rsample(16, gen(2))
    torch.testing.assert_close(flow.to_data(z), x)
    torch.testing.assert_close(flow.to_latent(x), z, rtol=0, atol=1e-10)
    x.sum().backward()  # reparametrized: every parameter of the transform gets a gradient
    assert all(p.grad is not None for p in flow.transform.parameters())


def test_flow_rejects_what_it_cannot_use(tmp_path) -> None:
    with pytest.raises(TypeError, match="CanonicalFlow.*PhaseSpaceGaussian"):
        CanonicalFlow(LinearSymplectic(1), torch.distributions.Normal(0.0, 1.0))
    with pytest.raises(TypeError, match="CanonicalFlow.*Transform"):
        CanonicalFlow(lambda x: x, PhaseSpaceGaussian.standard(1))
    with pytest.raises(ValueError, match="CanonicalFlow.build.*linear"):
        CanonicalFlow.build(1, linear="dense")
    custom = CanonicalFlow(LinearSymplectic(1), PhaseSpaceGaussian.standard(1))
    with pytest.raises(canonflow.checkpoint.CheckpointError, match="custom transform"):
        custom.save(tmp_path / "model.pt")


def test_version_one_files_load_with_their_weights(tmp_path) -> None:
    # A version-1 PhaseSpaceFlow file (the density flow before the reshape) written by hand: its base had only
    # log_frequency, of shape (n,). It loads as a CanonicalFlow with the same transform and frequencies.
    fixed_manual_seed(4)
    new = randomize_(CanonicalFlow.build(2, blocks=1, hidden=8).double(), 0.3, seed=4)
    state = {key: value for key, value in new.state_dict().items() if not key.startswith("_distribution.")}
    state["_distribution.log_frequency"] = torch.tensor([0.3, -0.2], dtype=F64)
    payload = {"format": "canonflow", "version": 1, "kind": "PhaseSpaceFlow", "config": new.config()}
    torch.save(payload | {"state_dict": state, "extra": {}}, tmp_path / "old.pt")
    loaded = canonflow.load(tmp_path / "old.pt")
    assert isinstance(loaded, CanonicalFlow)
    torch.testing.assert_close(loaded.base.frequencies[0], torch.tensor([0.3, -0.2], dtype=F64).exp())
    x = torch.randn(5, 4, dtype=F64)
    torch.testing.assert_close(loaded.to_latent(x), new.to_latent(x))
    state["_transform.unknown"] = torch.zeros(1)
    torch.save(payload | {"state_dict": state, "extra": {}}, tmp_path / "extra.pt")
    with pytest.raises(canonflow.checkpoint.CheckpointError, match="no place"):
        canonflow.load(tmp_path / "extra.pt")


RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"


@pytest.mark.parametrize("name", ["density_ring2d", "free_energy_double_well", "sampling_banana"])
def test_committed_version_one_models_load(name: str) -> None:
    payload = torch.load(RESULTS / name / "model.pt", weights_only=True)
    model = canonflow.load(RESULTS / name / "model.pt")
    assert payload["version"] == 1 and isinstance(model, CanonicalFlow)
    renamed = {
        key.replace("transform.", "_transform.", 1) if key.startswith("transform.") else key: value
        for key, value in payload["state_dict"].items()
    }
    for key, value in model.state_dict().items():
        if key in renamed:
            torch.testing.assert_close(value.flatten(), renamed[key].flatten(), rtol=0, atol=0)
