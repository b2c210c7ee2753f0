"""Learning Hamiltonians from (noisy) trajectories: derivative matching and symplectic trajectory matching.

A ``HamiltonianNet`` is a scalar network ``H_θ(q, p)``; its dynamics are Hamilton's equations
``ẋ = Ω∇H_θ(x)`` with ``Ω = [[0, I], [-I, 0]]``. ``fit_hamiltonian`` trains it on observed trajectories
``x_{r,0}, …, x_{r,T-1}`` sampled every ``Δt`` in one of three ways:

``"derivative"`` (HNN, Greydanus et al. 2019)
    minimise ``mean ‖Ω∇H_θ(x_{r,t}) − ẋ_{r,t}‖²`` over all observed states. The targets ``ẋ`` are either the
    exact derivatives at the clean states (``derivatives="exact"``, Greydanus et al.'s protocol: noisy inputs,
    noise-free targets; needs a ``TrajectoryData``) or central finite differences of the noisy states
    ``(x_{t+1} − x_{t−1}) / (2Δt)`` at the interior samples (``derivatives="finite_difference"``, the default,
    the only choice when nothing but positions and momenta are observed).

``"leapfrog"`` (SRNN-style, Chen et al. 2020; separable ``H_θ = K_θ(p) + V_θ(q)`` only)
    cut every trajectory into overlapping windows ``x_s, …, x_{s+k}`` of ``k`` steps, integrate ``Φ`` from the
    observed (noisy) ``x_s`` and minimise ``mean_j ‖Φ^{j}(x_s) − x_{s+j}‖²`` for ``j = 1..k``, where ``Φ`` is
    ``substeps`` Störmer–Verlet steps of size ``Δt / substeps``; backpropagation through the integrator.

``"implicit_midpoint"`` (Choudhary et al. 2024; any, also non-separable ``H_θ``)
    the same window loss with ``Φ`` the implicit midpoint rule ``x' = x + h Ω∇H_θ((x + x')/2)``, which is
    symplectic for every ``H_θ``. With ``adjoint=True`` the loss is accumulated step by step and the gradients
    come from the integrator's discrete adjoint (``implicit_midpoint_adjoint(..., loss=...)`` from
    ``canonflow.transforms.hamiltonian_flows``): memory does not grow with the window length; with
    ``adjoint=False`` from backpropagation through the fixed-point iterations.

The model, ``HamiltonianNet``, is an MLP (optionally separable, ``K_θ(p) + V_θ(q)``) plus an optional closed-form
part: a quadratic form (``quadratic=True``) or a polynomial of degree ``d`` (``polynomial=d``). A tanh MLP
saturates outside its training data; the closed-form part carries a quadratic or polynomial growth of ``H``
there. ``fit_hamiltonian(..., base_steps=k)`` fits the closed-form part alone for ``k`` steps before the whole
model, so that the MLP learns only the residual.

Evaluation (the protocol of Choudhary et al.): the learned ``H_θ`` is determined only up to an additive
constant, so ``hamiltonian_error`` reports ``mean |H_θ(x) − c − H(x)|`` over test points with the offset
``c = mean(H_θ − H)``; ``hamiltonian_test_sets`` gives the three test distributions. ``rollout`` integrates
the learned and the true dynamics from the same initial states and reports the energy error along them
(Greydanus et al.'s "energy MSE").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any

import torch
from torch import nn

from canonflow.checkpoint import register_model
from canonflow.data import TrajectoryData, trajectories
from canonflow.integrators import get_integrator, implicit_midpoint, leapfrog
from canonflow.nn import MLP
from canonflow.phase_space import hamiltonian_vector_field, join, split
from canonflow.systems import HamiltonianSystem
from canonflow.training import TrainConfig, TrainResult, train
from canonflow.transforms.hamiltonian_flows import implicit_midpoint_adjoint
from canonflow.validation import check_non_negative_int, check_phase_space, check_positive_int

log = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "HamiltonianNet",
    "Rollout",
    "fit_hamiltonian",
    "hamiltonian_error",
    "hamiltonian_test_sets",
    "evaluate_hamiltonian",
    "rollout",
]

MODES = ("derivative", "leapfrog", "implicit_midpoint")
"""The training modes of ``fit_hamiltonian``."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@register_model
class HamiltonianNet(nn.Module):
    """A learned Hamiltonian ``H_θ : (B, 2n) -> (B,)`` on phase space laid out ``[q, p]``.

    Non-separable (default): ``H_θ(q, p) = MLP([q, p])``. Separable (``separable=True``):
    ``H_θ(q, p) = K_θ(p) + V_θ(q)`` with two MLPs (``networks[0]`` for ``K``, ``networks[1]`` for ``V``), as
    explicit splitting integrators (leapfrog) require; ``depth=0`` means no MLP at all (quadratic form only). Each
    MLP has ``depth`` hidden layers of width ``hidden`` with ``activation`` and no output bias (an additive
    constant does not change the dynamics and would receive no gradient). The attribute ``separable`` tells
    ``canonflow.integrators`` whether explicit splitting methods may be used. With ``quadratic=True`` a
    learnable quadratic form is added — ``½ xᵀSx`` with ``S`` symmetric ``2n × 2n``, or for a separable model
    ``½ pᵀS_p p + ½ qᵀS_q q`` — so that quadratic Hamiltonians are exactly representable (``S`` starts at
    zero). With ``polynomial = d ≥ 1`` a learnable polynomial ``Σ_{1 ≤ |α| ≤ d} c_α x^α`` over all monomials
    ``x^α = Π_i x_i^{α_i}`` of total degree 1 to ``d`` is added instead (for a separable model one polynomial in
    ``p`` added to ``K_θ`` and one in ``q`` added to ``V_θ``; coefficients start at zero): for a Hamiltonian that
    grows like a polynomial of degree ``d`` at large ``|x|`` this part carries the growth that a saturating MLP
    cannot extrapolate, and polynomial Hamiltonians of degree ``≤ d`` become exactly representable. ``d ≥ 2``
    contains the quadratic form, so it excludes ``quadratic=True``. ``fit_hamiltonian(..., base_steps=...)``
    can train this closed-form part alone first. The parameters are in ``dtype`` (``"float32"`` or
    ``"float64"``). Registered with ``canonflow.checkpoint``: ``save_model`` / ``canonflow.load`` round-trip it.
    """

    def __init__(
        self,
        n: int = 1,
        hidden: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        separable: bool = False,
        quadratic: bool = False,
        polynomial: int = 0,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.n = check_positive_int(n, "n", who)
        if dtype not in _DTYPES:
            raise ValueError(f"{who}: expected dtype to be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.hidden, self.depth, self.activation = hidden, depth, activation
        self.separable = bool(separable)
        self.quadratic = bool(quadratic)
        self.dtype_name = dtype
        check_non_negative_int(depth, "depth", who)
        check_non_negative_int(polynomial, "polynomial (a degree)", who)
        if polynomial >= 2 and self.quadratic:
            raise ValueError(f"{who}: polynomial={polynomial} already contains the quadratic form; drop quadratic=True")
        self.polynomial = polynomial
        if depth == 0 and not (self.quadratic or polynomial):
            raise ValueError(f"{who}: depth=0 (no network) needs quadratic=True or polynomial >= 1, else H_θ = 0")
        self.networks = nn.ModuleList()
        if depth > 0:
            parts = (n, n) if self.separable else (2 * n,)
            self.networks.extend(MLP(size, 1, hidden, depth, activation, output_bias=False) for size in parts)
        if self.quadratic:
            blocks = 2 if self.separable else 1
            size = n if self.separable else 2 * n
            self.quadratic_forms = nn.Parameter(torch.zeros(blocks, size, size))
        if polynomial:
            size = n if self.separable else 2 * n
            self._monomial_counts, parents, factors = _monomials(size, polynomial)
            self.register_buffer("_monomial_parents", parents, persistent=False)
            self.register_buffer("_monomial_factors", factors, persistent=False)
            count = size + parents.shape[0]
            self.polynomial_coefficients = nn.Parameter(torch.zeros(2 if self.separable else 1, count))
        self.to(_DTYPES[dtype])

    @property
    def closed_form_parameters(self) -> list[nn.Parameter]:
        """The parameters of the quadratic form and of the polynomial (empty without either)."""
        return [getattr(self, k) for k in ("quadratic_forms", "polynomial_coefficients") if hasattr(self, k)]

    def _polynomial(self, z: torch.Tensor, block: int) -> torch.Tensor:
        """``Σ_α c_α z^α`` with the coefficients ``polynomial_coefficients[block]``, shape ``(B,)``.

        Monomials are built degree by degree, ``z^α = z^{α − e_i} · z_i``, by products only (no ``pow``), so
        derivatives of every order are finite at ``z = 0``.
        """
        monomials, start = z, 0
        for count in self._monomial_counts:
            parents = self._monomial_parents[start : start + count]
            factors = self._monomial_factors[start : start + count]
            monomials = torch.cat([monomials, monomials[:, parents] * z[:, factors]], dim=-1)
            start += count
        return monomials @ self.polynomial_coefficients[block]

    def _quadratic(self, parts: tuple[torch.Tensor, ...], first: int = 0) -> torch.Tensor:
        """``Σ_i ½ zᵢᵀ Sᵢ zᵢ`` with ``Sᵢ`` the symmetrised ``quadratic_forms[first + i]``."""
        forms = self.quadratic_forms[first : first + len(parts)]
        forms = 0.5 * (forms + forms.transpose(1, 2))
        return sum(0.5 * ((z @ form) * z).sum(-1) for z, form in zip(parts, forms, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``H_θ(x)`` of shape ``(B,)`` for ``x`` of shape ``(B, 2n)``."""
        check_phase_space(x, self.n, type(self).__name__)
        if self.separable:
            q, p = split(x)
            return self.kinetic(p) + self.potential(q)
        value = self.networks[0](x) if self.networks else x.new_zeros(x.shape[0])
        return self._closed_form(value, x, 0)

    def kinetic(self, p: torch.Tensor) -> torch.Tensor:
        """``K_θ(p)`` of shape ``(B,)`` (separable models only)."""
        self._require_separable("kinetic")
        value = self.networks[0](p) if self.networks else p.new_zeros(p.shape[0])
        return self._closed_form(value, p, 0)

    def potential(self, q: torch.Tensor) -> torch.Tensor:
        """``V_θ(q)`` of shape ``(B,)`` (separable models only)."""
        self._require_separable("potential")
        value = self.networks[1](q) if self.networks else q.new_zeros(q.shape[0])
        return self._closed_form(value, q, 1)

    def _closed_form(self, value: torch.Tensor, z: torch.Tensor, block: int) -> torch.Tensor:
        """``value`` plus the quadratic form and/or polynomial of block ``block`` (0: all of x, or p; 1: q)."""
        if self.quadratic:
            value = value + self._quadratic((z,), block)
        if self.polynomial:
            value = value + self._polynomial(z, block)
        return value

    def _require_separable(self, method: str) -> None:
        if not self.separable:
            raise NotImplementedError(f"HamiltonianNet.{method}: the model is not separable (separable=False)")

    def config(self) -> dict[str, Any]:
        """The constructor arguments (for ``canonflow.checkpoint.save_model``)."""
        return {
            "n": self.n,
            "hidden": self.hidden,
            "depth": self.depth,
            "activation": self.activation,
            "separable": self.separable,
            "quadratic": self.quadratic,
            "polynomial": self.polynomial,
            "dtype": self.dtype_name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HamiltonianNet:
        """Rebuild a model from ``config()`` (weights are loaded separately)."""
        return cls(**config)

    def extra_repr(self) -> str:
        return f"n={self.n}, separable={self.separable}, dtype={self.dtype_name}"


def _monomials(size: int, degree: int) -> tuple[tuple[int, ...], torch.Tensor, torch.Tensor]:
    """The monomials of total degree 2..``degree`` in ``size`` variables, built from those of one degree less.

    Monomials are numbered degree by degree: ``0..size−1`` are the variables, then each degree's sorted index
    tuples. Returns ``(counts, parents, factors)``: the number of monomials of each degree 2..``degree``, and for
    each of them the number of its parent (itself without its last factor) and of that last factor variable.
    """
    number = {(i,): i for i in range(size)}
    counts, parents, factors = [], [], []
    for k in range(2, degree + 1):
        combos = list(combinations_with_replacement(range(size), k))
        for combo in combos:
            parents.append(number[combo[:-1]])
            factors.append(combo[-1])
            number[combo] = len(number)
        counts.append(len(combos))
    as_index = {"dtype": torch.long}
    return tuple(counts), torch.tensor(parents, **as_index), torch.tensor(factors, **as_index)


# ----------------------------------------------------------------------------------------------------------------
# Training


def _model_dtype(model: nn.Module) -> torch.dtype:
    parameter = next(model.parameters(), None)
    return torch.get_default_dtype() if parameter is None else parameter.dtype


def _time_step(times: torch.Tensor, who: str) -> float:
    """The common spacing ``Δt`` of uniformly spaced ``times`` (relative tolerance 1e-6)."""
    if times.shape[0] < 2:
        raise ValueError(f"{who}: need at least two time samples per trajectory, got {times.shape[0]}")
    steps = times[1:] - times[:-1]
    dt = float(steps.mean())
    if not bool(((steps - dt).abs() <= 1e-6 * abs(dt)).all()):
        raise ValueError(f"{who}: the sample times must be uniformly spaced (trajectory matching needs one Δt)")
    return dt


def _observations(
    data: TrajectoryData | torch.Tensor, dt: float | None, width: int | None, dtype: torch.dtype, who: str
) -> tuple[torch.Tensor, float, torch.Tensor | None]:
    """``(states (num, T, 2n), Δt, exact derivatives or None)`` from ``data``, validated and cast to ``dtype``."""
    if dt is not None:
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
            raise ValueError(f"{who}: expected dt to be a positive finite float, got {dt!r}")
        dt = float(dt)
    if isinstance(data, TrajectoryData):
        states, derivatives = data.states, data.derivatives
        data_dt = _time_step(data.times, who)
        if dt is not None and abs(dt - data_dt) > 1e-6 * data_dt:
            raise ValueError(f"{who}: dt={dt} contradicts the spacing {data_dt} of data.times; leave dt unset")
        dt = data_dt
    elif isinstance(data, torch.Tensor):
        states, derivatives = data, None
        if dt is None:
            raise ValueError(f"{who}: a tensor of trajectories needs dt (the sampling interval)")
    else:
        raise TypeError(
            f"{who}: expected data to be a TrajectoryData or a tensor (num, T, 2n), got {type(data).__name__}"
        )
    if not states.is_floating_point():
        raise TypeError(f"{who}: expected floating-point trajectories, got dtype {states.dtype}")
    if states.dim() != 3 or states.shape[-1] == 0 or states.shape[-1] % 2 != 0:
        raise ValueError(f"{who}: expected trajectories of shape (num, T, 2n), got {tuple(states.shape)}")
    if width is not None and states.shape[-1] != width:
        raise ValueError(
            f"{who}: trajectories have width {states.shape[-1]} but the model expects 2n = {width} coordinates"
        )
    if states.shape[1] < 2:
        raise ValueError(f"{who}: need at least two time samples per trajectory, got shape {tuple(states.shape)}")
    if not bool(torch.isfinite(states).all()):
        raise ValueError(f"{who}: the trajectories contain NaN or Inf")
    return states.to(dtype), dt, None if derivatives is None else derivatives.to(dtype)


def _derivative_pairs(
    states: torch.Tensor, dt: float, exact: torch.Tensor | None, derivatives: str, who: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and target time derivatives, each ``(M, 2n)``."""
    width = states.shape[-1]
    if derivatives == "exact":
        if exact is None:
            raise ValueError(f"{who}: derivatives='exact' needs a TrajectoryData (with .derivatives), got a tensor")
        return states.reshape(-1, width), exact.reshape(-1, width)
    if derivatives == "finite_difference":
        if states.shape[1] < 3:
            raise ValueError(f"{who}: finite differences need at least 3 samples per trajectory")
        targets = (states[:, 2:] - states[:, :-2]) / (2.0 * dt)
        return states[:, 1:-1].reshape(-1, width), targets.reshape(-1, width)
    raise ValueError(f"{who}: derivatives must be 'exact' or 'finite_difference', got {derivatives!r}")


def _windows(states: torch.Tensor, window: int, who: str) -> torch.Tensor:
    """All overlapping windows ``x_s..x_{s+k}`` of ``k = window`` steps, shape ``(M, k + 1, 2n)``."""
    if states.shape[1] < window + 1:
        raise ValueError(
            f"{who}: windows of {window} steps need at least {window + 1} samples per trajectory, got {states.shape[1]}"
        )
    windows = states.unfold(1, window + 1, 1)  # (num, T - k, 2n, k + 1)
    return windows.permute(0, 1, 3, 2).reshape(-1, window + 1, states.shape[-1])


def _make_loss(
    model: nn.Module,
    mode: str,
    adjoint: bool,
    substeps: int,
    dt: float,
    tol: float,
    max_iter: int,
) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """``loss(inputs, targets)``: derivative loss on pairs, or window loss on windows (``targets`` unused)."""
    if mode == "derivative":

        def derivative_loss(inputs: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
            return (hamiltonian_vector_field(model, inputs) - targets).pow(2).mean()

        return derivative_loss

    h = dt / substeps

    def window_loss(windows: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        k = windows.shape[1] - 1
        x0 = windows[:, 0]
        if mode == "leapfrog":
            path = leapfrog(model, x0, h, k * substeps, trajectory=True)
        elif adjoint:
            # running loss: only one state at a time is kept, so memory does not grow with the window
            count = windows[:, 1:].numel()

            def stage(step: int, x: torch.Tensor) -> torch.Tensor | None:
                if step == 0 or step % substeps:
                    return None
                return (x - windows[:, step // substeps]).pow(2).sum() / count

            return implicit_midpoint_adjoint(model, x0, h, k * substeps, loss=stage, tol=tol, max_iter=max_iter)
        else:
            path = implicit_midpoint(model, x0, h, k * substeps, trajectory=True, tol=tol, max_iter=max_iter)
        predicted = path[substeps::substeps]  # (k, M, 2n)
        return (predicted - windows[:, 1:].transpose(0, 1)).pow(2).mean()

    return window_loss


def fit_hamiltonian(
    model: nn.Module,
    data: TrajectoryData | torch.Tensor,
    mode: str = "derivative",
    *,
    adjoint: bool = False,
    dt: float | None = None,
    derivatives: str = "finite_difference",
    window: int = 7,
    substeps: int = 1,
    batch_size: int | None = 256,
    config: TrainConfig | None = None,
    validation_data: TrajectoryData | torch.Tensor | None = None,
    tol: float = 1e-10,
    max_iter: int = 50,
    base_steps: int = 0,
) -> TrainResult:
    """Fit ``model`` (a Hamiltonian ``(B, 2n) -> (B,)``) to observed trajectories; return the ``TrainResult``.

    Args:
        model: the Hamiltonian to train in place, e.g. a ``HamiltonianNet``; data are cast to its dtype.
        data: a ``TrajectoryData`` (uniformly spaced ``times``) or a tensor ``(num, T, 2n)`` of observed states.
        mode: ``"derivative"``, ``"leapfrog"`` (needs ``model.separable``) or ``"implicit_midpoint"``; see the
            module docstring for the losses.
        adjoint: with ``mode="implicit_midpoint"``, take gradients by the discrete adjoint (memory constant in
            the window length) instead of backpropagation.
        dt: the sampling interval ``Δt``; required for a tensor, taken from ``data.times`` otherwise.
        derivatives: derivative mode's targets: ``"finite_difference"`` (central differences of the observed,
            noisy states) or ``"exact"`` (``data.derivatives``, exact at the clean states).
        window: ``k``, the number of observation intervals per window in trajectory modes.
        substeps: integrator steps per observation interval (step size ``Δt / substeps``).
        batch_size: samples (pairs or windows) per optimizer step, drawn uniformly with replacement from the
            generator ``train`` provides; ``None`` uses all of them every step.
        config: the ``canonflow.training.TrainConfig`` (steps, learning rate, schedule, checkpoints, …);
            default ``TrainConfig(steps=2000, lr=1e-3, progress=False)``.
        validation_data: held-out trajectories (same kind as ``data``); the loss on (at most 4096 evenly
            spaced samples of) them is the validation value, and the best weights are kept.
        tol, max_iter: tolerance and iteration cap of the implicit-midpoint fixed-point solves.
        base_steps: with a ``HamiltonianNet`` that has a closed-form part (``quadratic=True`` or
            ``polynomial ≥ 1``), first fit that part alone — a ``depth=0`` copy of the model, same loss, data and
            ``config`` but ``base_steps`` steps and no checkpoint — and start the full model from it; the
            networks then learn the residual instead of competing with the closed-form part from the start.
            Skipped when ``config.resume`` finds a checkpoint (it holds the weights). ``0``: no such stage.

    Raises ``ValueError``/``TypeError`` naming ``fit_hamiltonian`` for malformed data (shape, NaN/Inf,
    ``dt ≤ 0``, non-uniform times, too few samples for the window) or incompatible options.
    """
    who = "fit_hamiltonian"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{who}: expected model to be a torch.nn.Module, got {type(model).__name__}")
    if mode not in MODES:
        raise ValueError(f"{who}: unknown mode {mode!r}; choose one of {list(MODES)}")
    if adjoint and mode != "implicit_midpoint":
        raise ValueError(f"{who}: adjoint=True is only available with mode='implicit_midpoint', got mode={mode!r}")
    if mode == "leapfrog" and getattr(model, "separable", False) is not True:
        raise ValueError(
            f"{who}: mode='leapfrog' needs a separable Hamiltonian K(p) + V(q) (e.g. HamiltonianNet(separable=True)); "
            f"use mode='implicit_midpoint' for a non-separable one"
        )
    check_positive_int(window, "window", who)
    check_positive_int(substeps, "substeps", who)
    check_positive_int(max_iter, "max_iter", who)
    check_non_negative_int(base_steps, "base_steps", who)
    if base_steps and not (isinstance(model, HamiltonianNet) and model.closed_form_parameters):
        raise ValueError(
            f"{who}: base_steps needs a HamiltonianNet with a closed-form part (quadratic=True or polynomial >= 1)"
        )
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size", who)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"{who}: expected a positive finite tol, got {tol!r}")
    n = getattr(model, "n", None)
    width = 2 * n if isinstance(n, int) else None
    dtype = _model_dtype(model)

    def prepare(source: TrajectoryData | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        states, step, exact = _observations(source, dt, width, dtype, who)
        if mode == "derivative":
            inputs, targets = _derivative_pairs(states, step, exact, derivatives, who)
            return inputs, targets, step
        return _windows(states, window, who), None, step

    inputs, targets, step = prepare(data)
    loss = _make_loss(model, mode, adjoint, substeps, step, float(tol), max_iter)
    count = inputs.shape[0]

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        if batch_size is None or batch_size >= count:
            return loss(inputs, targets)
        index = torch.randint(count, (batch_size,), generator=generator)
        return loss(inputs[index], None if targets is None else targets[index])

    validate = None
    if validation_data is not None:
        val_inputs, val_targets, val_step = prepare(validation_data)
        if abs(val_step - step) > 1e-6 * step:
            raise ValueError(f"{who}: validation_data has Δt={val_step}, data has Δt={step}")
        keep = torch.linspace(0, val_inputs.shape[0] - 1, min(val_inputs.shape[0], 4096)).round().long()
        val_inputs = val_inputs[keep]
        val_targets = None if val_targets is None else val_targets[keep]

        def validate() -> float:
            return float(loss(val_inputs, val_targets))

    config = TrainConfig(steps=2000, lr=1e-3, progress=False) if config is None else config
    resuming = config.resume and config.checkpoint is not None and Path(config.checkpoint).is_file()
    if base_steps and not resuming:
        base = HamiltonianNet.from_config({**model.config(), "depth": 0}).to(next(model.parameters()).device)
        base.load_state_dict(model.state_dict(), strict=False)
        stage = replace(
            config, steps=base_steps, checkpoint=None, resume=False, description=f"{config.description} (base)"
        )
        options = {"adjoint": adjoint, "dt": dt, "derivatives": derivatives, "window": window, "substeps": substeps}
        fitted = fit_hamiltonian(
            base, data, mode, **options, batch_size=batch_size, config=stage, validation_data=validation_data,
            tol=tol, max_iter=max_iter,
        )  # fmt: skip
        log.info("closed-form part fitted in %d steps, best validation %.4g", fitted.steps, fitted.best_validation)
        with torch.no_grad():
            for target, source in zip(model.closed_form_parameters, base.closed_form_parameters, strict=True):
                target.copy_(source)
    return train(model, loss_fn, config, validate=validate)


# ----------------------------------------------------------------------------------------------------------------
# Evaluation


def _plane(
    kind: str, half_width: float, std: float, num: int, grid_size: int, seed: int, dtype: torch.dtype
) -> torch.Tensor:
    """Points ``(u, v)`` of one test distribution in a 2-D plane, shape ``(M, 2)``."""
    if kind == "grid":
        axis = torch.linspace(-half_width, half_width, grid_size, dtype=torch.float64)
        u, v = torch.meshgrid(axis, axis, indexing="ij")
        points = torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)
    elif kind == "uniform":
        generator = torch.Generator().manual_seed(seed)
        points = (2.0 * torch.rand(num, 2, generator=generator, dtype=torch.float64) - 1.0) * half_width
    elif kind == "gaussian":
        generator = torch.Generator().manual_seed(seed + 1)
        points = std * torch.randn(num, 2, generator=generator, dtype=torch.float64)
    else:
        raise ValueError(f"hamiltonian_test_sets: unknown test distribution {kind!r}")
    return points.to(dtype)


def hamiltonian_test_sets(
    system: HamiltonianSystem,
    *,
    num: int = 100_000,
    grid_size: int = 30,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> dict[str, torch.Tensor]:
    """The three test distributions of Choudhary et al. (2024) for ``system``, as ``(M, 2n)`` tensors.

    One degree of freedom: ``"grid"`` — a ``grid_size × grid_size`` grid on ``[−2, 2]²`` in ``(q, p)``;
    ``"uniform"`` — ``num`` uniform points on ``[−2, 2]²``; ``"gaussian"`` — ``num`` standard-normal points.
    Hénon–Heiles (``system.name == "henon_heiles"``): the same in the slice ``q_x = 0.1``, ``p_x = 0.2`` with
    ``(q_y, p_y) ∈ [−0.5, 0.5]²``; the Gaussian there is ``N(0, 0.25²)`` in ``(q_y, p_y)`` (the box's
    half-width over 2, the ratio of the 1-DoF case). Other systems raise ``ValueError``.
    """
    who = "hamiltonian_test_sets"
    check_positive_int(num, "num", who)
    check_positive_int(grid_size, "grid_size", who)
    if system.n == 1:
        return {k: _plane(k, 2.0, 1.0, num, grid_size, seed, dtype) for k in ("grid", "uniform", "gaussian")}
    if system.name == "henon_heiles":
        sets = {}
        for kind in ("grid", "uniform", "gaussian"):
            plane = _plane(kind, 0.5, 0.25, num, grid_size, seed, dtype)
            q = torch.stack([torch.full_like(plane[:, 0], 0.1), plane[:, 0]], dim=-1)
            p = torch.stack([torch.full_like(plane[:, 1], 0.2), plane[:, 1]], dim=-1)
            sets[kind] = join(q, p)
        return sets
    raise ValueError(f"{who}: test sets are defined for one-degree-of-freedom systems and henon_heiles, got {system}")


def hamiltonian_error(
    model: Callable[[torch.Tensor], torch.Tensor],
    system: Callable[[torch.Tensor], torch.Tensor],
    points: torch.Tensor,
    *,
    batch_size: int = 65_536,
) -> float:
    """``mean |H_θ(x) − c − H(x)|`` over ``points`` (``(M, 2n)``), with the offset ``c = mean(H_θ − H)``.

    ``model`` is the learned and ``system`` the true Hamiltonian; the difference is taken in float64 after
    evaluating ``model`` in its own dtype, ``batch_size`` points at a time, without gradients.
    """
    who = "hamiltonian_error"
    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[0] == 0:
        raise ValueError(f"{who}: expected points of shape (M, 2n) with M > 0, got {getattr(points, 'shape', points)}")
    dtype = _model_dtype(model) if isinstance(model, nn.Module) else points.dtype
    differences = []
    with torch.no_grad():
        for chunk in points.split(batch_size):
            learned = model(chunk.to(dtype)).to(torch.float64)
            differences.append(learned - system(chunk.to(torch.float64)).to(torch.float64))
    difference = torch.cat(differences)
    return float((difference - difference.mean()).abs().mean())


def evaluate_hamiltonian(
    model: Callable[[torch.Tensor], torch.Tensor], system: HamiltonianSystem, **test_set_options: Any
) -> dict[str, float]:
    """``hamiltonian_error`` on each of ``hamiltonian_test_sets(system, **test_set_options)``, keyed by name."""
    return {
        k: hamiltonian_error(model, system, x) for k, x in hamiltonian_test_sets(system, **test_set_options).items()
    }


@dataclass
class Rollout:
    """Learned vs true trajectories from the same initial states and the energy error along them.

    Attributes:
        times: the sample times ``t_0 = 0 < … < t_{T−1}``, shape ``(T,)``.
        true_states: the true trajectories ``x_r(t)``, shape ``(R, T, 2n)``.
        learned_states: the trajectories ``x̂_r(t)`` of the learned dynamics, shape ``(R, T, 2n)``.
        energy_error: ``E(x̂_r(t)) − E(x_r(t))`` for the true energy ``E``, shape ``(R, T)``.
    """

    times: torch.Tensor
    true_states: torch.Tensor
    learned_states: torch.Tensor
    energy_error: torch.Tensor

    @property
    def energy_mse(self) -> float:
        """``(1/(R·T)) Σ_r Σ_t (E(x̂_r(t)) − E(x_r(t)))²``: Greydanus et al.'s energy MSE."""
        return float(self.energy_error.pow(2).mean())

    @property
    def state_mse(self) -> float:
        """``(1/(R·T·2n)) Σ ‖x̂_r(t) − x_r(t)‖²``."""
        return float((self.learned_states - self.true_states).pow(2).mean())


def rollout(
    model: Callable[[torch.Tensor], torch.Tensor],
    system: HamiltonianSystem,
    initial: torch.Tensor,
    t_end: float,
    num_points: int,
    *,
    integrator: str = "rk4",
    substeps: int = 10,
    energy: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Rollout:
    """Integrate the learned and the true dynamics from ``initial`` (``(R, 2n)``) over ``[0, t_end]``.

    The true trajectories come from ``canonflow.data.trajectories`` (DOP853 at tolerance 1e-12); the learned
    ones from ``canonflow.integrators.get_integrator(integrator)`` applied to ``model`` with step
    ``t_end / ((num_points − 1)·substeps)``, sampled at the same ``num_points`` times. ``energy`` (default: the
    true Hamiltonian ``system``) is evaluated along both in float64.
    """
    who = "rollout"
    check_positive_int(substeps, "substeps", who)
    if not (isinstance(num_points, int) and num_points >= 2):
        raise ValueError(f"{who}: expected num_points >= 2, got {num_points!r}")
    if not (isinstance(t_end, (int, float)) and math.isfinite(t_end) and t_end > 0):
        raise ValueError(f"{who}: expected t_end > 0, got {t_end!r}")
    check_phase_space(initial, system.n, who)
    reference = trajectories(system, initial.shape[0], (float(t_end), num_points), initial=initial.to(torch.float64))
    dtype = _model_dtype(model) if isinstance(model, nn.Module) else torch.float64
    h = float(t_end) / ((num_points - 1) * substeps)
    with torch.no_grad():
        path = get_integrator(integrator)(model, initial.to(dtype), h, (num_points - 1) * substeps, trajectory=True)
    learned = path[::substeps].transpose(0, 1).to(torch.float64)
    true = reference.clean_states
    energy = system.hamiltonian if energy is None else energy
    width = true.shape[-1]
    with torch.no_grad():
        error = energy(learned.reshape(-1, width)) - energy(true.reshape(-1, width))
    return Rollout(reference.times, true, learned, error.reshape(true.shape[:2]))
