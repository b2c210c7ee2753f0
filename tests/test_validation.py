"""``canonflow/validation.py``: every public check refuses what it should, with a message naming the caller and the
argument, and passes (or converts) what it should.

Each layer's refusal of bad input and bad constructor arguments is tested beside the layer, in ``tests/transforms``
and ``tests/nn``, through the shared contract of ``tests/layer_contract.py``.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from canonflow.validation import (
    DTYPES,
    as_dtype,
    as_samples,
    check_choice,
    check_energy,
    check_non_negative_float,
    check_non_negative_int,
    check_phase_space,
    check_points,
    check_positive_float,
    check_positive_int,
    check_real,
    check_step_size,
    check_times,
    check_trajectories,
    set_validation,
    validation,
    validation_enabled,
)

F64 = torch.float64


# ---------------------------------------------------------------------------------------------- the switch


def test_validation_switch_and_context_manager_restore_the_setting() -> None:
    assert validation_enabled()
    with validation(False):
        assert not validation_enabled()
        check_phase_space("not a tensor", 1, "Layer")  # switched off: nothing is checked
        with validation(True):
            assert validation_enabled()
        assert not validation_enabled()
    assert validation_enabled()
    with pytest.raises(RuntimeError, match="inside"), validation(False):
        raise RuntimeError("inside")
    assert validation_enabled()  # restored on an exception too
    set_validation(False)
    try:
        assert not validation_enabled()
    finally:
        set_validation(True)


def test_canonflow_validation_is_the_module_and_the_switch() -> None:
    # ``import canonflow`` is lazy, so the submodule canonflow.validation is the package's attribute once any
    # layer is imported; calling it is the context manager, and its checks are its attributes
    import canonflow
    import canonflow.validation as module

    assert canonflow.validation is module and canonflow.validation.check_positive_int is check_positive_int
    with canonflow.validation(False):
        assert not validation_enabled()
    assert validation_enabled()
    with pytest.raises(TypeError):
        canonflow.validation()  # the switch needs its setting


def test_import_canonflow_imports_neither_torch_nor_a_subpackage() -> None:
    probe = "import sys, canonflow\nassert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')]\n"
    probe += "assert canonflow.CanonicalFlow.__module__ == 'canonflow.flow'\n"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-2, ValueError), (True, TypeError), (1.0, TypeError)])
def test_check_positive_int_refuses_what_is_not_an_int_above_zero(value: object, error: type) -> None:
    with pytest.raises(error, match=f"Layer: expected width to be a positive int, got {value!r}"):
        check_positive_int(value, "width", "Layer")


def test_check_positive_int_returns_the_int() -> None:
    assert check_positive_int(3, "width", "Layer") == 3


@pytest.mark.parametrize("value", [-1, True, 2.0, "3", None])
def test_check_non_negative_int_refuses_what_is_not_an_int_at_least_zero(value: object) -> None:
    with pytest.raises(ValueError, match="Layer: expected width to be a non-negative int"):
        check_non_negative_int(value, "width", "Layer")


@pytest.mark.parametrize("value", [0, 1, 7])
def test_check_non_negative_int_returns_an_int_at_least_zero(value: int) -> None:
    assert check_non_negative_int(value, "width", "Layer") == value


@pytest.mark.parametrize("value", [0, 0.0, -1.5, math.nan, math.inf, True, "1", None])
def test_check_positive_float_refuses_what_is_not_a_finite_number_above_zero(value: object) -> None:
    with pytest.raises(ValueError, match=r"fit: expected a finite lr > 0, got"):
        check_positive_float(value, "lr", "fit")


@pytest.mark.parametrize(("value", "expected"), [(2, 2.0), (1e-300, 1e-300), (0.5, 0.5)])
def test_check_positive_float_returns_a_float(value: object, expected: float) -> None:
    result = check_positive_float(value, "lr", "fit")
    assert result == expected and type(result) is float


@pytest.mark.parametrize("value", [-1e-12, -3, math.nan, -math.inf, math.inf, False, "0", None])
def test_check_non_negative_float_refuses_what_is_not_a_finite_number_at_least_zero(value: object) -> None:
    with pytest.raises(ValueError, match=r"fit: weight must be a finite number >= 0, got"):
        check_non_negative_float(value, "weight", "fit")


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (0.0, 0.0), (3, 3.0)])
def test_check_non_negative_float_returns_a_float(value: object, expected: float) -> None:
    result = check_non_negative_float(value, "weight", "fit")
    assert result == expected and type(result) is float


@pytest.mark.parametrize(
    ("value", "positive", "error", "message"),
    [
        (True, False, TypeError, "expected g to be a real number, got True"),
        ("1", False, TypeError, "expected g to be a real number"),
        (math.nan, False, ValueError, "expected g to be finite, got nan"),
        (-math.inf, False, ValueError, "expected g to be finite, got -inf"),
        (0, True, ValueError, r"expected g > 0, got 0.0"),
        (-1.0, True, ValueError, r"expected g > 0, got -1.0"),
    ],
    ids=["bool", "str", "nan", "-inf", "zero-positive", "negative-positive"],
)
def test_check_real_refuses_what_is_not_a_finite_real(value: object, positive: bool, error: type, message: str) -> None:
    with pytest.raises(error, match=f"Pendulum: .*{message}"):
        check_real(value, "g", "Pendulum", positive=positive)


def test_check_real_returns_a_float_of_either_sign_unless_positive() -> None:
    assert check_real(-2, "g", "Pendulum") == -2.0 and type(check_real(-2, "g", "Pendulum")) is float
    assert check_real(0.5, "g", "Pendulum", positive=True) == 0.5


@pytest.mark.parametrize(
    ("value", "positive", "error", "message"),
    [
        (0.0, False, ValueError, r"expected a finite, non-zero step_size \(negative runs backward in time\), got 0.0"),
        (math.nan, False, ValueError, "finite, non-zero step_size"),
        (math.inf, False, ValueError, "finite, non-zero step_size"),
        (-0.1, True, ValueError, r"expected a finite, positive step_size, got -0.1"),
        (torch.tensor([0.1, 0.2]), False, ValueError, r"expected a scalar step_size, got a tensor of shape \(2,\)"),
        (torch.tensor(0.0), False, ValueError, "non-zero step_size"),
        (True, False, TypeError, "expected step_size to be a non-zero float or a scalar tensor, got True"),
        ("0.1", True, TypeError, "expected step_size to be a positive float"),
    ],
    ids=["zero", "nan", "inf", "negative-positive", "two-elements", "zero-tensor", "bool", "str"],
)
def test_check_step_size_refuses_zero_nan_inf_and_non_numbers(
    value: object, positive: bool, error: type, message: str
) -> None:
    with pytest.raises(error, match=f"leapfrog: .*{message}"):
        check_step_size(value, "leapfrog", positive=positive)


def test_check_step_size_returns_a_float_and_allows_negative_steps_unless_positive() -> None:
    assert check_step_size(-0.1, "leapfrog") == -0.1
    assert check_step_size(2, "leapfrog", positive=True) == 2.0
    step = torch.tensor([0.25], dtype=F64, requires_grad=True)
    result = check_step_size(step, "leapfrog", positive=True)
    assert result == 0.25 and type(result) is float


# ---------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("value", ["Adam", "", None, 1, ("adam",)])
def test_check_choice_refuses_what_is_not_one_of_the_choices(value: object) -> None:
    with pytest.raises(ValueError, match=r"fit: optimizer must be one of 'adam', 'lbfgs', got "):
        check_choice(value, ("adam", "lbfgs"), "optimizer", "fit")


def test_check_choice_returns_the_choice() -> None:
    assert check_choice("lbfgs", ("adam", "lbfgs"), "optimizer", "fit") == "lbfgs"


@pytest.mark.parametrize("name", ["float16", "double", torch.float64, None, "Float32"])
def test_as_dtype_refuses_names_outside_dtypes(name: object) -> None:
    with pytest.raises(ValueError, match=r"load: dtype must be one of \['float32', 'float64'\], got"):
        as_dtype(name, "load")


def test_as_dtype_maps_each_name_to_its_dtype() -> None:
    assert DTYPES == {"float32": torch.float32, "float64": torch.float64}
    assert as_dtype("float32", "load") is torch.float32 and as_dtype("float64", "load") is torch.float64


# ---------------------------------------------------------------------------------------------- tensors


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (torch.zeros(3, 2, dtype=F64), r"the energy must map \(B, 2n\) to \(B,\) = \(3,\), got \(3, 2\)"),
        (torch.zeros(4, dtype=F64), r"got \(4,\)"),
        (torch.zeros((), dtype=F64), r"got \(\)"),
        (np.zeros(3), "got ndarray"),
    ],
    ids=["two-dims", "wrong-batch", "zero-dims", "ndarray"],
)
def test_check_energy_refuses_what_is_not_one_value_per_point(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"HamiltonianLoss: .*{message}"):
        check_energy(value, 3, "HamiltonianLoss")


def test_check_energy_returns_the_tensor() -> None:
    energy = torch.zeros(3, dtype=F64)
    assert check_energy(energy, 3, "HamiltonianLoss") is energy


@pytest.mark.parametrize(
    ("x", "reference", "error", "message"),
    [
        ([[0.0, 0.0]], None, TypeError, r"expected a torch.Tensor of shape \(B, 4\), got list"),
        (torch.zeros(2, 4, dtype=torch.int64), None, TypeError, "floating-point tensor, got dtype torch.int64"),
        (torch.zeros(4, dtype=F64), None, ValueError, r"shape \(B, 4\) = \(B, 2n\) with n=2, got \(4,\)"),
        (torch.zeros(2, 5, dtype=F64), None, ValueError, "even last dimension 2n = 4 .* got odd 5"),
        (torch.zeros(2, 6, dtype=F64), None, ValueError, r"last dimension 2n = 4 \(n=2\), got 6 \(n=3\)"),
        (torch.zeros(2, 4, dtype=torch.float32), torch.zeros(1, dtype=F64), TypeError, "differs from the layer's"),
        (torch.tensor([[0.0, math.inf, 0.0, 0.0]], dtype=F64), None, ValueError, "input contains NaN or Inf"),
    ],
    ids=["list", "int-dtype", "one-dim", "odd-width", "wrong-width", "dtype-mismatch", "inf"],
)
def test_check_phase_space_refuses_bad_points(x: object, reference: object, error: type, message: str) -> None:
    with pytest.raises(error, match=f"Shear: .*{message}"):
        check_phase_space(x, 2, "Shear", reference)


def test_check_phase_space_passes_good_points() -> None:
    check_phase_space(torch.zeros(3, 4, dtype=F64), 2, "Shear", torch.zeros(1, dtype=F64))


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (np.zeros((2, 4)), TypeError, r"expected a torch.Tensor of shape \(B, 4\)"),
        (torch.zeros(2, 4, dtype=torch.int32), TypeError, "floating-point tensor, got dtype torch.int32"),
        (torch.zeros(2, 2, 4, dtype=F64), ValueError, r"expected shape \(B, 2n\) = \(B, 4\), got \(2, 2, 4\)"),
        (torch.zeros(2, 2, dtype=F64), ValueError, r"got \(2, 2\)"),
        (torch.tensor([[math.nan, 0.0, 0.0, 0.0]], dtype=F64), ValueError, "input contains NaN or Inf"),
    ],
    ids=["ndarray", "int-dtype", "three-dims", "wrong-width", "nan"],
)
def test_check_points_refuses_bad_points_even_with_validation_off(x: object, error: type, message: str) -> None:
    with validation(False), pytest.raises(error, match=f"evaluate: .*{message}"):
        check_points(x, 2, "evaluate")


def test_check_points_returns_the_points() -> None:
    x = torch.zeros(3, 4, dtype=F64)
    assert check_points(x, 2, "evaluate") is x


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        ([[[0.0] * 4] * 2], TypeError, r"expected trajectories as a torch.Tensor of shape \(num_traj, T, 4\)"),
        (torch.zeros(1, 2, 4, dtype=torch.int64), TypeError, "floating-point trajectories, got dtype torch.int64"),
        (
            torch.zeros(2, 4, dtype=F64),
            ValueError,
            r"rank 3, shape \(num_traj, T, 2n\) = \(num_traj, T, 4\), got rank 2",
        ),
        (torch.zeros(1, 2, 5, dtype=F64), ValueError, "even last dimension 2n .* got odd 5"),
        (torch.zeros(1, 2, 6, dtype=F64), ValueError, r"last dimension 2n = 4 \(n=2\), got 6"),
        (torch.zeros(1, 2, 4, dtype=F64), ValueError, "at least 3 time points per trajectory, got T=2"),
        (torch.zeros(0, 3, 4, dtype=F64), ValueError, r"at least one trajectory, got shape \(0, 3, 4\)"),
        (torch.full((1, 3, 4), math.nan, dtype=F64), ValueError, "trajectories contain NaN or Inf"),
    ],
    ids=["list", "int-dtype", "rank-2", "odd-width", "wrong-width", "too-few-times", "no-trajectory", "nan"],
)
def test_check_trajectories_refuses_bad_trajectories(x: object, error: type, message: str) -> None:
    with pytest.raises(error, match=f"fit: .*{message}"):
        check_trajectories(x, 2, "fit", min_times=3)


def test_check_trajectories_returns_the_trajectories() -> None:
    x = torch.zeros(2, 3, 4, dtype=F64)
    assert check_trajectories(x, 2, "fit", min_times=3) is x
    assert check_trajectories(x[:, :2], 2, "fit") is not None  # the default minimum is two time points


@pytest.mark.parametrize(
    ("times", "error", "message"),
    [
        ([0.0, 1.0, 2.0], TypeError, r"expected times as a torch.Tensor of shape \(3,\)"),
        (torch.tensor([0.0, 1.0], dtype=F64), ValueError, r"expected times of shape \(T,\) = \(3,\), got \(2,\)"),
        (torch.zeros(1, 3, dtype=F64), ValueError, r"got \(1, 3\)"),
        (torch.tensor([0.0, math.inf, 2.0], dtype=F64), ValueError, "times contain NaN or Inf"),
        (torch.tensor([0.0, 1.0, 1.0], dtype=F64), ValueError, "times must be strictly increasing"),
        (torch.tensor([0.0, 2.0, 1.0], dtype=F64), ValueError, "times must be strictly increasing"),
    ],
    ids=["list", "wrong-length", "two-dims", "inf", "repeated", "decreasing"],
)
def test_check_times_refuses_bad_times(times: object, error: type, message: str) -> None:
    with pytest.raises(error, match=f"fit: .*{message}"):
        check_times(times, 3, "fit", F64)


def test_check_times_returns_the_times_in_the_dtype() -> None:
    times = check_times(torch.tensor([0.0, 0.5, 2.0], dtype=torch.float32), 3, "fit", F64)
    assert times.dtype == F64 and times.tolist() == [0.0, 0.5, 2.0]


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (object(), TypeError, "points must be array-like, got object"),
        (np.zeros(4), ValueError, r"expected points of shape \(B, 4\) or \(B, 2\), got \(4,\)"),
        (np.zeros((0, 4)), ValueError, r"points is empty \(0 samples\)"),
        (np.zeros((3, 3)), ValueError, "width 2n = 4 .phase space. or n = 2 .configurations., got width 3"),
        (np.zeros((3, 4), dtype=complex), TypeError, "points must be real numbers, got dtype torch.complex128"),
        (np.zeros((3, 2), dtype=bool), TypeError, "points must be real numbers, got dtype torch.bool"),
        ([[0.0, math.nan]], ValueError, "points contains NaN or Inf"),
    ],
    ids=["object", "one-dim", "empty", "wrong-width", "complex", "bool", "nan"],
)
def test_as_samples_refuses_bad_data(data: object, error: type, message: str) -> None:
    with pytest.raises(error, match=f"log_prob: .*{message}"):
        as_samples(data, 2, "log_prob", torch.zeros(1, dtype=F64), name="points")


@pytest.mark.parametrize("width", [2, 4])
def test_as_samples_converts_to_the_reference_dtype(width: int) -> None:
    data = np.arange(3 * width, dtype=np.float32).reshape(3, width)
    samples = as_samples(data, 2, "log_prob", torch.zeros(1, dtype=F64))
    assert samples.dtype == F64 and samples.shape == (3, width)
    np.testing.assert_array_equal(samples.numpy(), data)
    ints = as_samples([[1, 2]], 2, "log_prob", torch.zeros(1, dtype=torch.float32))
    assert ints.dtype == torch.float32 and ints.tolist() == [[1.0, 2.0]]
