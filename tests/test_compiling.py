"""``canonflow/compiling.py``: compiled flows and training equal eager; compiled models stay saveable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import canonflow
from canonflow.density import fit_density
from canonflow.hamiltonian_learning import HamiltonianNet, fit_hamiltonian
from canonflow.training import TrainConfig

F64 = torch.float64
CHEAP = {"backend": "aot_eager"}  # traces as inductor does, without code generation


def _flow() -> canonflow.CanonicalFlow:
    torch.manual_seed(0)
    return canonflow.CanonicalFlow.build(2, blocks=2, hidden=8, base="diagonal").to(F64)


def test_compiled_flow_equals_eager_and_stays_saveable(tmp_path: Path) -> None:
    flow, x = _flow(), torch.randn(16, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    eager, keys = flow.log_prob(x), list(flow.state_dict())
    eager_draws, eager_log_prob = flow.sample_and_log_prob(8, generator=torch.Generator().manual_seed(2))
    assert canonflow.compile(flow, **CHEAP) is flow
    torch.testing.assert_close(flow.log_prob(x), eager, rtol=0, atol=1e-12)
    draws, log_prob = flow.sample_and_log_prob(8, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(draws, eager_draws, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_prob, eager_log_prob, rtol=0, atol=1e-12)
    assert list(flow.state_dict()) == keys  # in place: no _orig_mod. prefix
    flow.save(tmp_path / "model.pt")
    torch.testing.assert_close(canonflow.load(tmp_path / "model.pt").log_prob(x), eager, rtol=0, atol=1e-12)


def test_training_compiled_equals_training_eager() -> None:
    data = torch.randn(256, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    trained = []
    for compile_options in (False, CHEAP):
        flow = _flow()
        config = TrainConfig(steps=3, lr=1e-2, progress=False, compile=compile_options)
        fit_density(flow, data, validation_fraction=0, batch_size=32, config=config)
        trained.append(flow.state_dict())
    eager, compiled = trained
    assert all(torch.allclose(compiled[key], eager[key], rtol=0, atol=1e-10) for key in eager)
    assert any(not torch.equal(eager[key], _flow().state_dict()[key]) for key in eager)  # it did train


def test_bad_compile_requests_are_refused() -> None:
    with pytest.raises(TypeError, match="canonflow.compile: expected a torch.nn.Module, got function"):
        canonflow.compile(lambda x: x)
    with pytest.raises(TypeError, match="TrainConfig: compile must be a bool or a dict"):
        TrainConfig(compile="inductor")
    states = torch.zeros(2, 5, 2, dtype=F64)
    with pytest.raises(ValueError, match="fit_hamiltonian: TrainConfig\\(compile=...\\) is not supported"):
        fit_hamiltonian(HamiltonianNet(1, dtype="float64"), states, config=TrainConfig(compile=True))
