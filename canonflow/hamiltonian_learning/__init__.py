"""Learning Hamiltonians from (noisy) trajectories: derivative matching and symplectic trajectory matching.

A ``HamiltonianNet`` is a scalar network ``H_θ(q, p)``; its dynamics are Hamilton's equations
``ẋ = Ω∇H_θ(x)`` with ``Ω = [[0, I], [-I, 0]]``. ``fit_hamiltonian`` trains it on observed trajectories
``x_{r,0}, …, x_{r,T-1}`` sampled every ``Δt`` in one of three modes:

``"derivative"`` (HNN, Greydanus et al. 2019)
    minimise ``mean ‖Ω∇H_θ(x_{r,t}) − ẋ_{r,t}‖²`` over the observed states, with ``ẋ`` the exact derivatives
    at the clean states (``derivatives="exact"``, Greydanus et al.'s protocol: noisy inputs, noise-free
    targets; needs a ``TrajectoryData``) or central finite differences ``(x_{t+1} − x_{t−1}) / (2Δt)`` of the
    noisy states (``derivatives="finite_difference"``, the default).

``"leapfrog"`` (SRNN-style, Chen et al. 2020; separable ``H_θ = K_θ(p) + V_θ(q)`` only)
    cut every trajectory into overlapping windows ``x_s, …, x_{s+k}``, integrate ``Φ`` from the observed ``x_s``
    and minimise ``mean_j ‖Φ^{j}(x_s) − x_{s+j}‖²`` for ``j = 1..k``, ``Φ`` = ``substeps`` Störmer–Verlet steps of
    size ``Δt / substeps``; backpropagation through the integrator or, for a tanh ``HamiltonianNet``, leapfrog's
    hand-written discrete adjoint (``leapfrog_window``: the same gradients to round-off, fewer operations).

``"implicit_midpoint"`` (Choudhary et al. 2024; any, also non-separable ``H_θ``)
    the same window loss with ``Φ`` the implicit midpoint rule ``x' = x + h Ω∇H_θ((x + x')/2)``, symplectic for
    every ``H_θ``; with ``adjoint=True`` the gradients come from its discrete adjoint
    (``canonflow.integrators.implicit_midpoint_adjoint``), whose memory does not grow with the window length.

Evaluation (Choudhary et al.): ``hamiltonian_error`` is ``mean |H_θ(x) − c − H(x)|`` with the offset
``c = mean(H_θ − H)`` (``H_θ`` is determined only up to a constant) on the test sets of ``hamiltonian_test_sets``;
``rollout`` integrates the learned and the true dynamics from the same initial states (Greydanus et al.'s
"energy MSE").

Measured records (``canonflow.data.TrajectoryRecord``: own times, gaps, unequal lengths) are fitted in every mode
(derivative targets given or estimated; windows inside the gap-free segments, integrated with the actual steps) and
evaluated with no known system by ``record_rollout`` (rollouts from the observed states over the observed times;
trajectory and energy error against the record) and ``plot_record_rollout``. ``HamiltonianNet(damping=True)`` learns
a friction ``γ`` (``ẋ = Ω∇H_θ − γ(0, p)``), integrated by the conformally symplectic methods.

Modules: ``model`` (``HamiltonianNet``), ``losses`` (``DerivativeLoss``, ``WindowLoss`` and the rows they take),
``leapfrog_adjoint`` (``leapfrog_window``), ``metrics`` (test sets, errors, rollouts against a known system),
``evaluation`` (against a record), ``fit`` (``fit_hamiltonian`` over ``canonflow.training.train``).
"""

from __future__ import annotations

from canonflow.hamiltonian_learning.evaluation import RecordRollout, plot_record_rollout, record_rollout
from canonflow.hamiltonian_learning.fit import MODES, fit_hamiltonian
from canonflow.hamiltonian_learning.leapfrog_adjoint import leapfrog_window, leapfrog_window_supported
from canonflow.hamiltonian_learning.losses import (
    DerivativeLoss,
    WindowLoss,
    derivative_pairs,
    record_pairs,
    record_windows,
    windows,
)
from canonflow.hamiltonian_learning.metrics import (
    Rollout,
    evaluate_hamiltonian,
    hamiltonian_error,
    hamiltonian_test_sets,
    rollout,
    rollout_errors,
)
from canonflow.hamiltonian_learning.model import HamiltonianNet

__all__ = [
    "MODES",
    "DerivativeLoss",
    "HamiltonianNet",
    "RecordRollout",
    "Rollout",
    "WindowLoss",
    "derivative_pairs",
    "evaluate_hamiltonian",
    "fit_hamiltonian",
    "hamiltonian_error",
    "hamiltonian_test_sets",
    "leapfrog_window",
    "leapfrog_window_supported",
    "plot_record_rollout",
    "record_pairs",
    "record_rollout",
    "record_windows",
    "rollout",
    "rollout_errors",
    "windows",
]
