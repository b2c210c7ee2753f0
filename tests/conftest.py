"""Shared test set-up: each test starts from the same global torch state and may not leave it changed.

- Global torch state (thread count, default dtype, grad mode, anomaly mode, deterministic algorithms, canonflow's
  validation switch) is checked after every test: a test that changes it and does not put it back fails, so no
  test's verdict depends on which tests ran before it in the same process.
- Torch's global generator is seeded before every test from the test's id (shifted by ``CANONFLOW_TEST_SEED``,
  see ``randomness.py``) and restored afterwards, so a test draws the same numbers alone, in the full suite, or on
  any pytest-xdist worker.
- Under pytest-xdist, each worker and the processes it starts take an equal share of torch's threads
  (``OMP_NUM_THREADS`` or the cores), so that the workers together use what one process would: on two cores,
  two workers with two threads each ran the Kepler notebook in 143 s instead of 24 s.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator

import pytest
import torch
from randomness import seed

import canonflow


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "statistical: the verdict rests on random draws with a false-failure rate set by randomness.Z_SCORE; "
        "tests/seed_sweep.py reruns these over many seeds and thread counts",
    )
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one, as on CI); run with -m cuda")
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        share = max(1, torch.get_num_threads() // int(workers))
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)  # for the processes a test starts (notebook kernels, the CLI)


GLOBAL_STATE = {
    "torch.get_num_threads()": (torch.get_num_threads, torch.set_num_threads),
    "torch.get_default_dtype()": (torch.get_default_dtype, torch.set_default_dtype),
    "torch.is_grad_enabled()": (torch.is_grad_enabled, torch.set_grad_enabled),
    "torch.is_anomaly_enabled()": (torch.is_anomaly_enabled, torch.autograd.set_detect_anomaly),
    "torch.are_deterministic_algorithms_enabled()": (
        torch.are_deterministic_algorithms_enabled,
        torch.use_deterministic_algorithms,
    ),
    "canonflow.validation_enabled()": (canonflow.validation_enabled, canonflow.set_validation),
}
"""Each piece of global state a test may not leave changed: its getter and its setter."""


@pytest.fixture(autouse=True)
def _global_torch_state_is_left_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    before = {name: get() for name, (get, _) in GLOBAL_STATE.items()}
    rng_state = torch.random.get_rng_state()
    torch.manual_seed(seed(zlib.crc32(request.node.nodeid.encode()) % 1_000_000))
    yield
    torch.random.set_rng_state(rng_state)
    changed = {name: (before[name], get()) for name, (get, _) in GLOBAL_STATE.items() if get() != before[name]}
    for name in changed:
        GLOBAL_STATE[name][1](before[name])
    if changed:
        pytest.fail(f"the test left global state changed (before, after): {changed}; restore it in a fixture")


@pytest.fixture
def restore_threads() -> Iterator[None]:
    """For tests of in-process runs, which set torch's thread count from ``--threads`` as the command does: put
    it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
