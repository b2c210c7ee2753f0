"""``LinearSymplectic`` (NAK) and ``MatrixExpSymplectic``: the layer contract, the matrices, the NAK factors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_contract import (
    ALL_CHECKS,
    BAD_INPUTS,
    DIRECTIONS,
    MISMATCHED_INPUTS,
    SIZES,
    check_bad_input,
    make_layer,
    randomize_,
    run_check,
)
from randomness import manual_seed

from canonflow.phase_space import symplectic_form
from canonflow.testing import assert_invertible, assert_symplectic, jacobian
from canonflow.transforms import LinearSymplectic, MatrixExpSymplectic

F64 = torch.float64

FACTORIES = {
    "linear_diagonal": lambda n: LinearSymplectic(n, householder=min(3, n - 1)),
    "linear_full": lambda n: LinearSymplectic(n, householder=min(2, n - 1), full=True),
    "linear_many_reflections": lambda n: LinearSymplectic(n, householder=6),
    "matrix_exp": MatrixExpSymplectic,
}
BAD_INPUT_LAYERS = {
    "LinearSymplectic": lambda: LinearSymplectic(2),
    "MatrixExpSymplectic": lambda: MatrixExpSymplectic(2),
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", sorted(FACTORIES))
@pytest.mark.parametrize("check", ALL_CHECKS)
def test_layer_contract(kind: str, n: int, check: str) -> None:
    run_check(check, lambda: make_layer(FACTORIES[kind], n), n)


@pytest.mark.parametrize("name", sorted(BAD_INPUT_LAYERS))
@pytest.mark.parametrize("case", sorted({**BAD_INPUTS, **MISMATCHED_INPUTS}))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_bad_input_is_refused_with_a_clear_message(name: str, case: str, direction: str) -> None:
    check_bad_input(BAD_INPUT_LAYERS[name](), name, case, direction)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 5), batch=st.integers(1, 9), k=st.integers(0, 6), seed=st.integers(0, 2**16))
def test_property_linear_symplectic_is_exact(n: int, batch: int, k: int, seed: int) -> None:
    manual_seed(seed)
    x = torch.randn(batch, 2 * n, dtype=F64)
    layer = randomize_(LinearSymplectic(n, householder=k).double(), seed=seed)
    assert_invertible(layer, x, atol=1e-10)
    assert_symplectic(layer, x, atol=1e-10)


@pytest.mark.parametrize("full", [False, True])
def test_linear_symplectic_matrix_is_symplectic_and_is_the_forward_map(full: bool) -> None:
    layer = randomize_(LinearSymplectic(4, householder=6, full=full).double())
    matrix = layer.matrix()
    omega = symplectic_form(4, dtype=F64)
    torch.testing.assert_close(matrix.T @ omega @ matrix, omega, rtol=0, atol=1e-12)
    x = torch.randn(2, 8, dtype=F64)
    torch.testing.assert_close(jacobian(layer, x)[0], matrix, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer(x)[0], x @ matrix.T)


def test_householder_part_is_orthogonal() -> None:
    layer = LinearSymplectic(3, householder=3).double()
    torch.nn.init.normal_(layer.phase)
    matrix = layer.matrix()
    torch.testing.assert_close(matrix.T @ matrix, torch.eye(6, dtype=F64), rtol=0, atol=1e-12)


def test_householder_part_equals_the_explicit_product_of_reflections() -> None:
    layer = randomize_(LinearSymplectic(4, householder=5).double())
    unitary = torch.eye(4, dtype=torch.complex128)
    for a, b in zip(layer.reflector_real, layer.reflector_imag, strict=True):
        v = torch.complex(a, b).detach().unsqueeze(1)
        unitary = unitary @ (torch.eye(4, dtype=torch.complex128) - 2 * (v @ v.conj().T) / (v.conj().T @ v))
    unitary = torch.diag(torch.polar(torch.ones(4, dtype=F64), layer.phase.detach())) @ unitary
    x = torch.randn(6, 8, dtype=F64)
    z = torch.complex(x[:, :4], x[:, 4:]) @ unitary.T
    scale = layer.log_scale.detach().exp()
    q, p = z.real * scale, z.imag / scale
    expected = torch.cat([q, p + q * layer.shear.detach()], 1)
    torch.testing.assert_close(layer(x)[0], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n, expected", [(1, 0), (2, 1), (5, 4), (9, 4)])
def test_default_number_of_reflections_is_n_minus_one_up_to_four(n: int, expected: int) -> None:
    layer = LinearSymplectic(n)
    assert layer.householder == expected and layer.reflector_real.shape == (expected, n)


def test_matrix_exp_matrix_is_symplectic_and_is_the_forward_map() -> None:
    layer = randomize_(MatrixExpSymplectic(2).double())
    matrix = layer.matrix()
    omega = symplectic_form(2, dtype=F64)
    torch.testing.assert_close(matrix.T @ omega @ matrix, omega, rtol=0, atol=1e-12)
    x = torch.randn(3, 4, dtype=F64)
    torch.testing.assert_close(layer(x)[0], x @ matrix.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.inverse(x)[0], x @ torch.linalg.inv(matrix).T, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "build",
    [
        lambda: LinearSymplectic(0),
        lambda: LinearSymplectic(2, householder=-1),
        lambda: LinearSymplectic(2, householder=True),
        lambda: LinearSymplectic(2, householder=1.0),
        lambda: MatrixExpSymplectic(0),
    ],
)
def test_bad_constructor_arguments_are_refused_by_name(build) -> None:
    with pytest.raises((ValueError, TypeError), match="(LinearSymplectic|MatrixExpSymplectic): expected"):
        build()
