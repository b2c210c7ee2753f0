"""Trajectory datasets: reference solutions of Hamilton's equations for training and testing.

:func:`trajectories` integrates ``ẋ = Ω∇H(x)`` for a batch of initial conditions with SciPy's ``DOP853``
(an 8th-order Runge–Kutta method) at tight tolerances and returns a :class:`TrajectoryData` holding the
sampled states, optionally with Gaussian observation noise, and the exact time derivatives at the clean
states (for derivative-matching training). The system is a :class:`~canonflow.systems.HamiltonianSystem` (from
the catalogue, or your own by ``HamiltonianSystem.from_callable``/``from_potential``) or any callable ``H(x)``.
Trajectories from outside canonflow are read by :func:`canonflow.data.load_trajectories`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

from canonflow.checkpoint import atomic_write
from canonflow.systems.base import HamiltonianSystem, Quantity, as_system
from canonflow.validation import check_positive_int, validation

__all__ = ["TrajectoryData", "trajectories"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1


def _check_tensor(value: object, name: str, ndim: int) -> torch.Tensor:
    who = "TrajectoryData"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{who}: expected {name} to be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{who}: expected {name} to be floating point, got dtype {value.dtype}")
    if value.dim() != ndim:
        raise ValueError(f"{who}: expected {name} to have {ndim} dimensions, got shape {tuple(value.shape)}")
    if not torch.isfinite(value).all():
        raise ValueError(f"{who}: {name} contains NaN or Inf")
    return value


@dataclass
class TrajectoryData:
    """Sampled trajectories of a Hamiltonian system.

    Attributes:
        times: sample times ``t_0 < t_1 < … < t_{T−1}``, shape ``(T,)``.
        states: observed states ``x(t) + ε``, ``ε ~ N(0, noise_std² I)``, shape ``(num, T, 2n)``.
        clean_states: the noise-free states ``x(t)`` (reference solution), shape ``(num, T, 2n)``.
        derivatives: the exact time derivatives ``ẋ = Ω∇H(x(t))`` at the clean states, shape ``(num, T, 2n)``.
        noise_std: the standard deviation of the observation noise (``≥ 0``).
        system_name: the name of the system (the registry name for the catalogue's).

    All tensors share one floating dtype; the constructor validates shapes and finiteness. Data read by
    :func:`canonflow.data.load_trajectories` have no reference solution: their ``clean_states`` are the observed
    ``states`` and their ``derivatives`` finite-difference estimates.
    """

    times: torch.Tensor
    states: torch.Tensor
    clean_states: torch.Tensor
    derivatives: torch.Tensor
    noise_std: float
    system_name: str

    def __post_init__(self) -> None:
        who = "TrajectoryData"
        times = _check_tensor(self.times, "times", 1)
        states = _check_tensor(self.states, "states", 3)
        clean = _check_tensor(self.clean_states, "clean_states", 3)
        deriv = _check_tensor(self.derivatives, "derivatives", 3)
        if states.shape[-1] % 2 != 0:
            raise ValueError(f"{who}: expected states of shape (num, T, 2n) with an even last dim, got {states.shape}")
        if states.shape[1] != times.shape[0]:
            raise ValueError(
                f"{who}: states has {states.shape[1]} time samples but times has {times.shape[0]} "
                f"(expected states of shape (num, T, 2n) with T = len(times))"
            )
        for name, t in (("clean_states", clean), ("derivatives", deriv)):
            if t.shape != states.shape:
                raise ValueError(f"{who}: {name} has shape {tuple(t.shape)}, expected {tuple(states.shape)}")
        if len({t.dtype for t in (times, states, clean, deriv)}) != 1:
            raise TypeError(f"{who}: all tensors must share one dtype")
        if times.shape[0] > 1 and not bool((times[1:] > times[:-1]).all()):
            raise ValueError(f"{who}: times must be strictly increasing")
        noise = float(self.noise_std)
        if not math.isfinite(noise) or noise < 0:
            raise ValueError(f"{who}: expected noise_std >= 0, got {self.noise_std}")
        self.noise_std = noise
        if not isinstance(self.system_name, str):
            raise TypeError(f"{who}: expected system_name to be a str, got {type(self.system_name).__name__}")

    # ------------------------------------------------------------------ views
    @property
    def num_trajectories(self) -> int:
        """The number of trajectories ``num``."""
        return self.states.shape[0]

    @property
    def num_times(self) -> int:
        """The number of samples ``T`` along each trajectory."""
        return self.times.shape[0]

    @property
    def n(self) -> int:
        """Degrees of freedom (states have width ``2n``)."""
        return self.states.shape[-1] // 2

    def flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(states, derivatives)`` flattened over trajectories and times, each of shape ``(num·T, 2n)``."""
        width = self.states.shape[-1]
        return self.states.reshape(-1, width), self.derivatives.reshape(-1, width)

    def to(self, dtype: torch.dtype) -> TrajectoryData:
        """A copy with every tensor cast to the floating ``dtype``."""
        if not dtype.is_floating_point:
            raise TypeError(f"TrajectoryData.to: expected a floating dtype, got {dtype}")
        return TrajectoryData(
            times=self.times.to(dtype),
            states=self.states.to(dtype),
            clean_states=self.clean_states.to(dtype),
            derivatives=self.derivatives.to(dtype),
            noise_std=self.noise_std,
            system_name=self.system_name,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the data to ``path`` as an ``.npz`` archive, atomically.

        The archive is written to a temporary file in the same directory and moved into place with
        ``os.replace`` (:func:`canonflow.checkpoint.atomic_write`), so readers never see a partial file. The path is
        used as given (no suffix is added). :func:`canonflow.data.save_trajectories` writes the exchange layouts
        (``t``, ``q``, ``p`` as ``.npz`` or ``.csv``) instead.
        """
        arrays = {
            "format_version": np.asarray(_FORMAT_VERSION),
            "times": self.times.detach().cpu().numpy(),
            "states": self.states.detach().cpu().numpy(),
            "clean_states": self.clean_states.detach().cpu().numpy(),
            "derivatives": self.derivatives.detach().cpu().numpy(),
            "noise_std": np.asarray(self.noise_std, dtype=np.float64),
            "system_name": np.asarray(self.system_name),
        }
        atomic_write(path, lambda stream: np.savez(stream, **arrays))
        logger.debug("saved %d trajectories of %s to %s", self.num_trajectories, self.system_name, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrajectoryData:
        """Read data written by :meth:`save` (validated as on construction)."""
        with np.load(Path(path), allow_pickle=False) as archive:
            keys = {"format_version", "times", "states", "clean_states", "derivatives", "noise_std", "system_name"}
            missing = keys - set(archive.files)
            if missing:
                raise ValueError(f"TrajectoryData.load: {path} is missing {sorted(missing)}; not a TrajectoryData file")
            version = int(archive["format_version"])
            if version != _FORMAT_VERSION:
                raise ValueError(f"TrajectoryData.load: unsupported format version {version} in {path}")
            return cls(
                times=torch.from_numpy(archive["times"]),
                states=torch.from_numpy(archive["states"]),
                clean_states=torch.from_numpy(archive["clean_states"]),
                derivatives=torch.from_numpy(archive["derivatives"]),
                noise_std=float(archive["noise_std"]),
                system_name=str(archive["system_name"]),
            )


def _resolve_times(times: object) -> np.ndarray:
    """A strictly increasing float64 array of sample times from ``times`` (see :func:`trajectories`)."""
    who = "trajectories"
    if isinstance(times, tuple) and len(times) == 2 and isinstance(times[1], int) and not isinstance(times[1], bool):
        t_end, num_points = times
        check_positive_int(num_points, "num_points", who)
        t_end = float(t_end)
        if not math.isfinite(t_end) or t_end <= 0:
            raise ValueError(f"{who}: expected t_end > 0 in times=(t_end, num_points), got {t_end}")
        if num_points < 2:
            raise ValueError(f"{who}: expected num_points >= 2 in times=(t_end, num_points), got {num_points}")
        return np.linspace(0.0, t_end, num_points)
    if isinstance(times, torch.Tensor):
        array = times.detach().cpu().to(torch.float64).numpy()
    elif isinstance(times, (np.ndarray, Sequence)):
        array = np.asarray(times, dtype=np.float64)
    else:
        raise TypeError(f"{who}: expected times as a 1-D array or (t_end, num_points), got {type(times).__name__}")
    if array.ndim != 1 or array.shape[0] < 1:
        raise ValueError(f"{who}: expected a non-empty 1-D array of times, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{who}: times contains NaN or Inf")
    if array.shape[0] > 1 and not (np.diff(array) > 0).all():
        raise ValueError(f"{who}: times must be strictly increasing")
    return array


def trajectories(
    system: HamiltonianSystem | Quantity,
    num_trajectories: int,
    times: object,
    *,
    initial: torch.Tensor | None = None,
    noise_std: float = 0.0,
    seed: int = 0,
    rtol: float = 1e-12,
    atol: float = 1e-12,
    dtype: torch.dtype = torch.float64,
    damping: float = 0.0,
) -> TrajectoryData:
    """Integrate Hamilton's equations ``ẋ = Ω∇H(x)`` (with ``damping = γ > 0`` the damped equations
    ``ẋ = Ω∇H(x) − γ(0, p)``) and sample the solutions.

    Args:
        system: a :class:`~canonflow.systems.HamiltonianSystem`, or any callable ``H(x)``, ``(B, 2n) -> (B,)``
            differentiable by autograd (wrapped by ``HamiltonianSystem.from_callable``; it needs ``initial``,
            whose width gives ``n``, and is named ``"custom"`` or by its ``__name__``).
        num_trajectories: the number of trajectories ``num``.
        times: either a strictly increasing 1-D array (list, NumPy array or tensor) of sample times — the
            initial conditions are the states at ``times[0]`` — or a tuple ``(t_end, num_points)`` (an ``int``
            second entry) meaning ``linspace(0, t_end, num_points)``.
        initial: initial states of shape ``(num, 2n)``; by default ``system.sample_initial(num)`` drawn with a
            generator seeded by ``seed`` (a system without a sampler raises an error saying what to pass).
        noise_std: standard deviation of i.i.d. Gaussian noise added to the observed ``states`` (``≥ 0``).
        seed: seed of the ``torch.Generator`` used for the initial conditions and the noise.
        rtol, atol: tolerances of ``scipy.integrate.solve_ivp(method="DOP853")``.
        dtype: floating dtype of the returned tensors (the integration always runs in float64).
        damping: the friction ``γ ≥ 0`` of ``ṗ = −∂H/∂q − γ p`` (``0``: Hamilton's equations); the energy ``H`` then
            decays, ``dH/dt = −γ pᵀ∂H/∂p``, as for a ``HamiltonianNet(damping=True)``.

    All trajectories are integrated in one ``solve_ivp`` call on the flattened ``(num·2n,)`` state, with the
    vector field evaluated by autograd on float64 tensors. Returns a :class:`TrajectoryData` whose
    ``derivatives`` are ``Ω∇H − γ(0, p)`` at the clean states.
    """
    who = "trajectories"
    if not isinstance(system, HamiltonianSystem):
        width = initial.shape[-1] if isinstance(initial, torch.Tensor) and initial.dim() == 2 else 0
        system = as_system(system, width // 2 if width and width % 2 == 0 else None, who)
    num = check_positive_int(num_trajectories, "num_trajectories", who)
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)):
        raise TypeError(f"{who}: expected noise_std to be a real number, got {noise_std!r}")
    if not math.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"{who}: expected noise_std >= 0, got {noise_std}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{who}: expected a floating dtype, got {dtype}")
    if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not 0 <= damping < math.inf:
        raise ValueError(f"{who}: expected a finite damping >= 0, got {damping!r}")
    damping = float(damping)

    def field(x: torch.Tensor) -> torch.Tensor:
        value = system.vector_field(x)
        if damping:
            value = torch.cat([value[:, : system.n], value[:, system.n :] - damping * x[:, system.n :]], dim=-1)
        return value

    for name, tol in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(tol, (int, float)) and tol > 0):
            raise ValueError(f"{who}: expected {name} > 0, got {tol!r}")
    t_eval = _resolve_times(times)
    generator = torch.Generator().manual_seed(int(seed))
    width = 2 * system.n

    if initial is None:
        x0 = system.sample_initial(num, generator=generator, dtype=torch.float64)
    else:
        if not isinstance(initial, torch.Tensor):
            raise TypeError(f"{who}: expected initial to be a torch.Tensor of shape ({num}, {width})")
        if initial.shape != (num, width):
            raise ValueError(
                f"{who}: expected initial of shape (num_trajectories, 2n) = ({num}, {width}) for "
                f"{system.name!r}, got {tuple(initial.shape)}"
            )
        if not initial.is_floating_point():
            raise TypeError(f"{who}: expected floating-point initial states, got dtype {initial.dtype}")
        if not torch.isfinite(initial).all():
            raise ValueError(f"{who}: initial states contain NaN or Inf")
        x0 = initial.detach().cpu().to(torch.float64)

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(y).view(num, width)
        with validation(False):
            return field(x).detach().numpy().ravel()

    if t_eval.shape[0] == 1:
        clean_np = x0.numpy()[:, None, :].copy()
    else:
        solution = solve_ivp(
            rhs,
            (float(t_eval[0]), float(t_eval[-1])),
            x0.numpy().ravel(),
            method="DOP853",
            t_eval=t_eval,
            rtol=rtol,
            atol=atol,
        )
        if not solution.success:
            raise RuntimeError(f"{who}: integration of {system.name!r} failed: {solution.message}")
        clean_np = solution.y.reshape(num, width, -1).transpose(0, 2, 1).copy()
        logger.debug("integrated %d %s trajectories with %d evaluations", num, system.name, solution.nfev)
    clean = torch.from_numpy(clean_np)
    if not torch.isfinite(clean).all():
        raise RuntimeError(f"{who}: the solution of {system.name!r} contains NaN or Inf (an orbit escaped?)")
    with torch.no_grad():
        derivatives = field(clean.reshape(-1, width)).reshape(clean.shape)
    states = clean
    if noise_std > 0:
        states = clean + noise_std * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    data = TrajectoryData(
        times=torch.from_numpy(t_eval),
        states=states,
        clean_states=clean,
        derivatives=derivatives.detach(),
        noise_std=float(noise_std),
        system_name=system.name,
    )
    return data if dtype == torch.float64 else data.to(dtype)
