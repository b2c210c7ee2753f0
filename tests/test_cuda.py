"""The CUDA code paths (``pytest -m cuda``): skipped without a CUDA device, as on CI; run on a GPU machine when one
is at hand (docs/performance.md says when they last ran and where).

Every layer on the GPU keeps the layer contract in float64 (round trip and symplectic defect ≤ 1e-10, both
directions, under ``no_grad`` too) and gives the CPU's values; a flow's density, draws and training step run there;
trajectory training (the leapfrog adjoint and the generic integrator) agrees with the CPU; the command line trains
with ``--device cuda``; and inductor's generated GPU code gives eager's values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from layer_contract import LAYER_FACTORIES, TOL, make_layer, sample

from canonflow import CanonicalFlow, canonical_flow
from canonflow.cli import main
from canonflow.density import fit_density
from canonflow.hamiltonian_learning import HamiltonianNet
from canonflow.hamiltonian_learning.leapfrog_adjoint import leapfrog_window
from canonflow.integrators import leapfrog
from canonflow.testing import assert_invertible, assert_symplectic
from canonflow.training import TrainConfig

CUDA = torch.device("cuda")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.usefixtures("restore_threads"),
]


def on_cuda(make: Callable[[int], torch.nn.Module], n: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same randomized float64 layer on the CPU and on the GPU."""
    cpu = make_layer(make, n)
    gpu = make_layer(make, n).to(CUDA)
    return cpu, gpu


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
@pytest.mark.parametrize("n", [1, 3])
def test_every_layer_keeps_the_contract_on_the_gpu_and_gives_the_cpu_s_values(kind: str, n: int) -> None:
    cpu, gpu = on_cuda(LAYER_FACTORIES[kind], n)
    for batch in (1, 5):
        x = sample(n, batch).to(CUDA)
        assert_invertible(gpu, x, atol=TOL)
        assert_symplectic(gpu, x, atol=TOL)
        assert_symplectic(gpu, x, atol=TOL, inverse=True)
    x = sample(n, 7)
    for direction in ("forward", "inverse"):
        expected, _ = getattr(cpu, direction)(x)
        with torch.no_grad():
            found, logabsdet = getattr(gpu, direction)(x.to(CUDA))
        assert found.device.type == "cuda" and logabsdet.device.type == "cuda"
        torch.testing.assert_close(found.cpu(), expected.detach(), rtol=1e-12, atol=1e-12)


def test_a_flow_s_density_draws_and_training_run_on_the_gpu() -> None:
    torch.manual_seed(0)
    flow = CanonicalFlow.build(2, blocks=2, hidden=16).double()
    gpu = CanonicalFlow.build(2, blocks=2, hidden=16).double().to(CUDA)
    gpu.load_state_dict(flow.state_dict())
    x = torch.randn(64, 4, dtype=torch.float64)
    torch.testing.assert_close(gpu.log_prob(x.to(CUDA)).cpu(), flow.log_prob(x), rtol=1e-12, atol=1e-12)
    drawn, log_q = gpu.sample_and_log_prob(256)
    assert drawn.device.type == "cuda" and drawn.shape == (256, 4)
    torch.testing.assert_close(log_q, gpu.log_prob(drawn), rtol=1e-10, atol=1e-10)
    data = torch.randn(512, 2, dtype=torch.float64) * torch.tensor([2.0, 0.5], dtype=torch.float64)
    result = fit_density(gpu, data.to(CUDA), config=TrainConfig(steps=20, lr=1e-2, progress=False))
    assert result.steps == 20 and all(torch.isfinite(torch.tensor(result.losses)))
    assert all(parameter.device.type == "cuda" for parameter in gpu.parameters())


def test_trajectory_training_agrees_with_the_cpu() -> None:
    torch.manual_seed(1)
    model = HamiltonianNet(2, hidden=16, depth=2, separable=True, dtype="float64")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    gpu = HamiltonianNet(2, hidden=16, depth=2, separable=True, dtype="float64").to(CUDA)
    gpu.load_state_dict(model.state_dict())
    x0 = torch.randn(8, 4, dtype=torch.float64)
    for run, net in (("cpu", model), ("cuda", gpu)):
        x = x0.clone().to(next(net.parameters()).device).requires_grad_(True)
        fast = leapfrog_window(net, x, 0.05, 6, 3)
        generic = leapfrog(net, x, 0.05, 6, trajectory=True)[3::3]
        torch.testing.assert_close(fast, generic, rtol=1e-12, atol=1e-12)
        gradients = torch.autograd.grad(fast.square().sum(), list(net.parameters()))
        if run == "cpu":
            expected = [gradient.clone() for gradient in gradients]
        else:
            for found, want in zip(gradients, expected, strict=True):
                torch.testing.assert_close(found.cpu(), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--example", "banana", "--steps", "5"],
        ["free-energy", "--system", "harmonic_chain", "--steps", "5", "--samples", "2000"],
        ["density", "--dataset", "ring2d", "--steps", "5"],
        ["action-angle", "--system", "oscillator", "--steps", "5"],
        ["learn-hamiltonian", "--system", "spring", "--steps", "5"],
        ["sample", "--target", "banana", "--steps", "5"],
    ],
    ids=lambda argv: argv[0],
)
def test_the_command_line_trains_on_the_gpu(argv: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main([*argv, "--device", "cuda", "--quick", "--quiet", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"] == "cuda" and (out / "model.pt").is_file()
    assert main(["evaluate", str(out / "model.pt"), "--quick", "--quiet"]) == 0


@pytest.mark.parametrize("mode", [None, "reduce-overhead"])
def test_inductor_s_gpu_code_gives_eager_s_values(mode: str | None) -> None:
    # "reduce-overhead" replays CUDA graphs: each output is read before the next call overwrites it
    torch.manual_seed(2)
    flow = canonical_flow(3, blocks=2, hidden=16).double().to(CUDA)
    x = torch.randn(128, 6, dtype=torch.float64, device=CUDA)
    torch.compiler.reset()
    try:
        for direction in ("forward", "inverse"):
            compiled = torch.compile(getattr(flow, direction), fullgraph=True, mode=mode)
            expected, _ = getattr(flow, direction)(x)
            for _ in range(3):  # warm-up, recording, replay
                found, _ = compiled(x)
                torch.testing.assert_close(found.clone(), expected, rtol=1e-10, atol=1e-10)
    finally:
        torch.compiler.reset()
