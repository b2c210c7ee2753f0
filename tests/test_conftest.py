"""The suite's own guard: a test that leaves global torch state changed fails, and the global generator is reset."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent

LEAKY_TESTS = """
import zlib

import torch
from randomness import seed

import canonflow


def test_leaves_float64_as_default():
    torch.set_default_dtype(torch.float64)


def test_leaves_validation_off():
    canonflow.set_validation(False)


def test_leaves_grad_off():
    torch.set_grad_enabled(False)


def test_reseeds_the_global_generator():
    torch.manual_seed(123)


def test_global_generator_is_seeded_from_the_test_id(request):
    assert torch.initial_seed() == seed(zlib.crc32(request.node.nodeid.encode()) % 1_000_000)


def test_restored_state_and_generator_for_the_next_test():
    assert torch.get_default_dtype() == torch.float32 and canonflow.validation_enabled() and torch.is_grad_enabled()
"""


def test_a_test_that_leaks_global_state_fails_and_the_next_starts_clean(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("conftest.py", "randomness.py"):
        pytester.makepyfile(**{name.removesuffix(".py"): (HERE / name).read_text()})
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    # In this process (a second interpreter would spend seconds importing torch): the inner run's modules get
    # names of their own (importlib mode), and it is not told of the xdist workers, whose thread share this one
    # already took. Should the guard under test fail to restore some state, this test's own guard fails it.
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist", "--import-mode=importlib")
    result.assert_outcomes(passed=6, errors=3)
    result.stdout.fnmatch_lines(["*the test left global state changed*torch.get_default_dtype()*"])
    result.stdout.fnmatch_lines(["*the test left global state changed*canonflow.validation_enabled()*"])
    result.stdout.fnmatch_lines(["*the test left global state changed*torch.is_grad_enabled()*"])
