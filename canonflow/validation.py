"""Input validation for canonical layers, switchable globally for speed.

Validation is on by default. ``canonflow.set_validation(False)`` turns it off everywhere (as
``torch.distributions.Distribution.set_default_validate_args`` does); ``canonflow.validation(False)`` does so
inside a ``with`` block. This module is ``canonflow.validation`` too, so calling it calls :func:`validation`
(the module is callable: its class is a :class:`types.ModuleType` with ``__call__``).
"""

from __future__ import annotations

import contextlib
import math
import sys
import types
from collections.abc import Iterator

import torch

__all__ = [
    "check_real",
    "set_validation",
    "validation_enabled",
    "validation",
    "check_phase_space",
    "check_positive_int",
    "check_non_negative_int",
    "check_choice",
    "check_positive_float",
    "check_energy",
    "DTYPES",
    "as_dtype",
    "check_non_negative_float",
    "check_points",
    "check_trajectories",
    "check_times",
    "as_samples",
    "check_step_size",
    "check_seed",
    "check_device",
]

_ENABLED = True


def set_validation(enabled: bool) -> None:
    """Switch input validation of every canonflow layer on or off."""
    global _ENABLED
    _ENABLED = bool(enabled)


def validation_enabled() -> bool:
    """Whether canonflow layers validate their inputs."""
    return _ENABLED


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
    """Context manager that sets validation on or off and restores the previous setting on exit."""
    previous = _ENABLED
    set_validation(enabled)
    try:
        yield
    finally:
        set_validation(previous)


def check_positive_int(value: object, name: str, who: str) -> int:
    """Return ``value`` if it is a positive ``int``, else raise naming ``who`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{who}: expected {name} to be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{who}: expected {name} to be a positive int, got {value}")
    return value


def check_non_negative_int(value: object, name: str, who: str) -> int:
    """Return ``value`` if it is an ``int >= 0`` (not a ``bool``), else raise ``ValueError`` naming ``who`` and
    ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{who}: expected {name} to be a non-negative int, got {value!r}")
    return value


def check_phase_space(
    x: object,
    n: int,
    who: str,
    reference: torch.Tensor | None = None,
) -> None:
    """Check that ``x`` is a finite floating ``(B, 2n)`` tensor matching ``reference``'s dtype and device.

    Raises ``TypeError`` (not a tensor, integer dtype, dtype or device mismatch) or ``ValueError`` (wrong
    shape, NaN or Inf), each naming ``who`` and what was expected. Does nothing when validation is off. Under
    ``torch.compile`` the checks of type, shape, dtype and device run while tracing; the NaN/Inf check, which
    depends on the values, is left out so that the graph does not break.
    """
    if not _ENABLED:
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor of shape (B, {2 * n}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{who}: expected a tensor of shape (B, {2 * n}) = (B, 2n) with n={n}, got {tuple(x.shape)}")
    if x.shape[-1] % 2 != 0:
        raise ValueError(f"{who}: expected an even last dimension 2n = {2 * n} ([q, p] layout), got odd {x.shape[-1]}")
    if x.shape[-1] != 2 * n:
        raise ValueError(
            f"{who}: expected last dimension 2n = {2 * n} (n={n}), got {x.shape[-1]} (n={x.shape[-1] // 2})"
        )
    if reference is not None:
        if x.dtype != reference.dtype:
            raise TypeError(
                f"{who}: input dtype {x.dtype} differs from the layer's {reference.dtype}; "
                f"convert one of them (e.g. layer.to({x.dtype}))"
            )
        if x.device != reference.device:
            raise TypeError(f"{who}: input is on {x.device} but the layer is on {reference.device}")
    if not torch.compiler.is_compiling() and not torch.isfinite(x).all():
        raise ValueError(f"{who}: input contains NaN or Inf")


def check_choice(value: object, choices: tuple[str, ...], name: str, who: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` naming ``who``, ``name`` and them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{who}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_positive_float(value: object, name: str, who: str) -> float:
    """Return ``value`` as a float if it is a finite real number ``> 0`` (not a bool), else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{who}: expected a finite {name} > 0, got {value!r}")
    return float(value)


def check_energy(value: object, batch: int, who: str, *, name: str = "energy", domain: str = "(B, 2n)") -> torch.Tensor:
    """``value`` if it is a tensor of shape ``(batch,)`` (an energy, or the ``name`` of another scalar function,
    evaluated on ``batch`` points of shape ``domain``); else a ``ValueError`` naming ``who``, the function and the
    shapes expected and found."""
    if not isinstance(value, torch.Tensor) or value.shape != (batch,):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{who}: the {name} must map {domain} to (B,) = ({batch},), got {shape}")
    return value


def as_samples(data: object, n: int, who: str, reference: torch.Tensor, name: str = "data") -> torch.Tensor:
    """``data`` (array-like) as a finite ``(B, 2n)`` (phase space) or ``(B, n)`` (configurations) tensor in
    ``reference``'s dtype and device; a ``TypeError``/``ValueError`` naming ``who`` and ``name`` otherwise."""
    try:
        tensor = torch.as_tensor(data)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"{who}: {name} must be array-like, got {type(data).__name__}") from error
    if tensor.dim() != 2:
        raise ValueError(f"{who}: expected {name} of shape (B, {2 * n}) or (B, {n}), got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise ValueError(f"{who}: {name} is empty (0 samples)")
    if tensor.shape[1] not in (n, 2 * n):
        raise ValueError(
            f"{who}: expected {name} of width 2n = {2 * n} (phase space) or n = {n} (configurations), "
            f"got width {tensor.shape[1]}"
        )
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{who}: {name} must be real numbers, got dtype {tensor.dtype}")
    tensor = tensor.to(dtype=reference.dtype, device=reference.device)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{who}: {name} contains NaN or Inf")
    return tensor


DTYPES = {"float32": torch.float32, "float64": torch.float64}
"""The floating dtypes a model may be built in, by the name its config stores."""


def as_dtype(name: object, who: str) -> torch.dtype:
    """The ``torch.dtype`` named ``name`` in :data:`DTYPES` (``"float32"`` or ``"float64"``); else a ``ValueError``
    naming ``who``."""
    if not isinstance(name, str) or name not in DTYPES:
        raise ValueError(f"{who}: dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def check_non_negative_float(value: object, name: str, who: str) -> float:
    """Return ``value`` as a float if it is a finite real number ``>= 0`` (not a bool), else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{who}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_points(x: object, n: int, who: str) -> torch.Tensor:
    """``x`` if it is a finite floating ``(B, 2n)`` tensor of phase-space points; else a ``TypeError`` or
    ``ValueError`` naming ``who`` (checked whether or not validation is on: a public entry point calls it once)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor of shape (B, {2 * n})")
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 2 or x.shape[-1] != 2 * n:
        raise ValueError(f"{who}: expected shape (B, 2n) = (B, {2 * n}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{who}: input contains NaN or Inf")
    return x


def check_trajectories(x: object, n: int, who: str, min_times: int = 2) -> torch.Tensor:
    """``x`` if it is a finite floating ``(num_traj, T, 2n)`` tensor with ``num_traj >= 1`` and ``T >= min_times``;
    else a ``TypeError`` or ``ValueError`` naming ``who`` and what was expected."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected trajectories as a torch.Tensor of shape (num_traj, T, {2 * n})")
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected floating-point trajectories, got dtype {x.dtype}")
    if x.dim() != 3:
        raise ValueError(
            f"{who}: expected trajectories of rank 3, shape (num_traj, T, 2n) = (num_traj, T, {2 * n}), "
            f"got rank {x.dim()} with shape {tuple(x.shape)}"
        )
    if x.shape[-1] % 2 != 0:
        raise ValueError(f"{who}: expected an even last dimension 2n ([q, p] layout), got odd {x.shape[-1]}")
    if x.shape[-1] != 2 * n:
        raise ValueError(f"{who}: expected last dimension 2n = {2 * n} (n={n}), got {x.shape[-1]}")
    if x.shape[1] < min_times:
        raise ValueError(f"{who}: expected at least {min_times} time points per trajectory, got T={x.shape[1]}")
    if x.shape[0] < 1:
        raise ValueError(f"{who}: expected at least one trajectory, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{who}: trajectories contain NaN or Inf")
    return x


def check_times(times: object, length: int, who: str, dtype: torch.dtype) -> torch.Tensor:
    """Strictly increasing, finite sample times of shape ``(length,)``, returned in ``dtype``; else a
    ``TypeError`` or ``ValueError`` naming ``who``."""
    if not isinstance(times, torch.Tensor):
        raise TypeError(f"{who}: expected times as a torch.Tensor of shape ({length},)")
    if times.dim() != 1 or times.shape[0] != length:
        raise ValueError(f"{who}: expected times of shape (T,) = ({length},), got {tuple(times.shape)}")
    if not torch.isfinite(times).all():
        raise ValueError(f"{who}: times contain NaN or Inf")
    if not bool((times[1:] > times[:-1]).all()):
        raise ValueError(f"{who}: times must be strictly increasing")
    return times.to(dtype)


def check_step_size(value: object, who: str, *, positive: bool = False) -> float:
    """Return the time step ``value`` as a float if it is finite and non-zero (``> 0`` when ``positive``).

    ``value`` is an int, a float or a one-element tensor (an integrator's step may be a tensor that receives
    gradients); a negative step runs an integrator backward in time. Raises ``TypeError`` (not a number) or
    ``ValueError`` (zero, negative when ``positive``, NaN, Inf, several elements), naming ``who`` and ``step_size``.
    """
    sign = "positive" if positive else "non-zero"
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{who}: expected a scalar step_size, got a tensor of shape {tuple(value.shape)}")
        number = float(value.detach())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise TypeError(f"{who}: expected step_size to be a {sign} float or a scalar tensor, got {value!r}")
    if not math.isfinite(number) or number == 0.0 or (positive and number < 0.0):
        backward = "" if positive else " (negative runs backward in time)"
        raise ValueError(f"{who}: expected a finite, {sign} step_size{backward}, got {number}")
    return number


def check_real(value: object, name: str, who: str, *, positive: bool = False) -> float:
    """Return ``value`` as a finite float (``> 0`` when ``positive``); a ``TypeError`` (not a real number, or a
    bool) or ``ValueError`` (NaN, ±inf, not positive) naming ``who`` and ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{who}: expected {name} to be a real number, got {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{who}: expected {name} to be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{who}: expected {name} > 0, got {value}")
    return value


def check_seed(value: object, name: str, who: str) -> int:
    """Return ``value`` if it is an ``int`` in ``[0, 2**63)``, a seed that ``torch.Generator.manual_seed`` takes
    even after the offsets added for derived streams; else raise ``ValueError`` naming ``who`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"{who}: expected {name} to be an int in [0, 2**63), got {value!r}")
    return value


def check_device(value: object, name: str, who: str) -> torch.device:
    """The ``torch.device`` named ``value`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``) if this torch can use it; else a
    ``ValueError`` naming ``who`` and ``name`` and why not."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"{who}: expected {name} to be 'cpu', 'cuda' or 'cuda:N', got {value!r}") from error
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{who}: expected {name} to be 'cpu' or 'cuda[:N]', got {value!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{who}: {value!r} requested but CUDA is not available to torch {torch.__version__}; use 'cpu'"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{who}: {value!r} requested but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


class _CallableModule(types.ModuleType):
    """This module's class: ``canonflow.validation(enabled)`` is :func:`validation` ``(enabled)``."""

    def __call__(self, enabled: bool) -> contextlib.AbstractContextManager[None]:
        return validation(enabled)


sys.modules[__name__].__class__ = _CallableModule
