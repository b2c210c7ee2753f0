"""Leapfrog windows of a separable tanh ``HamiltonianNet`` with a hand-written discrete adjoint.

Trajectory training integrates a batch of windows with leapfrog (kick-drift-kick, first same as last) through the
closed-form part gradients ``∂K_θ/∂p`` and ``∂V_θ/∂q`` (``HamiltonianNet.part_gradients``) and backpropagates the
loss through every kick and drift. Recorded by autograd, each of the ``2N + 1`` part-gradient evaluations of a
window of ``N`` steps is a dozen graph nodes whose backward passes each accumulate their own small weight gradient.
``leapfrog_window`` runs the same steps without a graph and differentiates them by the discrete adjoint of
leapfrog, written out: backward from the last step,

    ``d̄_{j+1} = −h/2 (p̄_{j+1} + p̄½_{j+1})``, ``q̄_{j+1} += J_V(q_{j+1})ᵀ d̄_{j+1}``,
    ``p̄½_j = p̄_{j+1} + h J_K(p½_j)ᵀ q̄_{j+1}``, ``q̄_j = q̄_{j+1}``, ``p̄_j = p̄½_j``

(``J_V``, ``J_K`` the Hessians of ``V_θ`` and ``K_θ``; output gradients are added at the states they belong to),
where each product ``J_Vᵀ v`` and its parameter gradient ``∂(vᵀ∂V_θ/∂q)/∂θ`` come from the MLP's recursion
(``_Part.backward``). The parameter gradients of all evaluations are summed at the end in one matrix product per
layer. The result equals backpropagation through ``canonflow.integrators.leapfrog`` to round-off
(``tests/hamiltonian_learning/test_leapfrog_adjoint.py``).

Supported (``leapfrog_window_supported``): a separable, undamped ``HamiltonianNet`` with tanh networks
(``depth ≥ 1``) and optionally the quadratic form, with its own part gradients; other models take the generic
integrator.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from canonflow.hamiltonian_learning.model import HamiltonianNet
from canonflow.integrators import check_integrator_input
from canonflow.validation import check_positive_int

__all__ = ["leapfrog_window", "leapfrog_window_supported"]


def leapfrog_window_supported(model: nn.Module) -> bool:
    """Whether ``leapfrog_window`` handles ``model``: a separable, undamped ``HamiltonianNet`` with tanh networks
    (``depth ≥ 1``), without a polynomial part (the quadratic form is supported), that declares its parts
    (``separable_parts``) and has ``HamiltonianNet``'s own ``part_gradients``: a subclass that hides its parts or
    replaces their gradients is integrated as it says, by the generic integrator."""
    return (
        isinstance(model, HamiltonianNet)
        and model.separable_parts is True
        and getattr(type(model), "part_gradients", None) is HamiltonianNet.part_gradients
        and not model.damped
        and not model.polynomial
        and len(model.networks) == 2
        and all(
            isinstance(activation, nn.Tanh) for network in model.networks for _, activation in network.hidden_layers
        )
    )


class _Part:
    """One part's gradient ``z ↦ ∇f(z)``, ``f(z) = wᵀ h_L (+ ½ zᵀSz)``, ``h_l = tanh(h_{l−1} W_lᵀ + b_l)``,
    ``h_0 = z``, evaluated without a graph, and the adjoint of those evaluations.

    Forward: ``g_L = w ⊙ s_L`` with ``s_l = 1 − h_l²``, ``u_l = g_l W_l``, ``g_{l−1} = u_l ⊙ s_{l−1}``,
    ``∇f = u_1 (+ zS)``. ``backward(v, record)`` returns ``J_fᵀ v`` (``J_f`` the Hessian of ``f``): the recursion
    reversed, ``ḡ_l = ū_l W_lᵀ``, ``ū_{l+1} = ḡ_l ⊙ s_l``, ``h̄_l = −2 h_l ⊙ s̄_l (+ ā_{l+1} W_{l+1})`` with
    ``s̄_l = ḡ_l ⊙ u_{l+1}`` (``ḡ_L ⊙ w`` at the top), ``ā_l = h̄_l ⊙ s_l``, ``J_fᵀ v = ā_1 W_1 (+ vS)``; it keeps the
    factors of the parameter gradient ``∂(vᵀ∇f)/∂θ`` (``W̄_l = Σ g_lᵀ ū_l + ā_lᵀ h_{l−1}``, ``b̄_l = Σ ā_l``,
    ``w̄ = Σ ḡ_L ⊙ s_L``, ``S̄ = Σ zᵀ v``), which ``parameter_gradients()`` sums over all evaluations at once. Every
    ``x ⊙ s_l`` is torch's ``tanh_backward(x, h_l)``.
    """

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor], row: torch.Tensor, form: Any) -> None:
        self.weights, self.biases, self.row, self.form = weights, biases, row, form
        self.transposed = [weight.t() for weight in weights]
        self.top = -2.0 * row  # −2 w: s̄_L = ḡ_L ⊙ w enters h̄_L as −2 h_L ⊙ s̄_L
        depth = len(weights)
        # W̄_l = Σ g_lᵀ ū_l + ā_lᵀ h_{l−1}: the four factors of every evaluation, one list each per layer
        self.chain: list[list[torch.Tensor]] = [[] for _ in range(depth)]
        self.chain_adjoints: list[list[torch.Tensor]] = [[] for _ in range(depth)]
        self.adjoints: list[list[torch.Tensor]] = [[] for _ in range(depth)]
        self.layer_inputs: list[list[torch.Tensor]] = [[] for _ in range(depth)]
        self.top_adjoints: list[torch.Tensor] = []  # ḡ_L
        self.top_outputs: list[torch.Tensor] = []  # h_L
        self.inputs: list[torch.Tensor] = []
        self.vectors: list[torch.Tensor] = []

    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """``(∇f(z), record)``; ``record`` holds what ``backward`` needs."""
        depth = len(self.weights)
        outputs = [z]  # h_0 .. h_L
        for transposed, bias in zip(self.transposed, self.biases, strict=True):
            outputs.append(torch.tanh(torch.addmm(bias, outputs[-1], transposed)))
        g = torch.ops.aten.tanh_backward(self.row, outputs[-1])
        chain, products = [g] * depth, [z] * depth  # g_l and u_l = g_l W_l
        for index in reversed(range(depth)):
            chain[index] = g
            products[index] = g @ self.weights[index]
            if index:
                g = torch.ops.aten.tanh_backward(products[index], outputs[index])
        gradient = products[0] if self.form is None else torch.addmm(products[0], z, self.form)
        return gradient, (outputs, chain, products)

    def backward(self, v: torch.Tensor, record: tuple) -> torch.Tensor:
        """``J_fᵀ v`` at the evaluation ``record``; the parameter-gradient factors are kept."""
        outputs, chain, products = record
        depth = len(self.weights)
        tanh_backward = torch.ops.aten.tanh_backward
        ubar = v
        sbar = [v] * depth  # s̄_l, the adjoint of s_l through the gradient recursion (below the top)
        for index in range(depth):
            self.chain[index].append(chain[index])
            self.chain_adjoints[index].append(ubar)
            gbar = ubar @ self.transposed[index]
            if index < depth - 1:
                sbar[index] = gbar * products[index + 1]
                ubar = tanh_backward(gbar, outputs[index + 1])
        self.top_adjoints.append(gbar)
        self.top_outputs.append(outputs[-1])
        below = outputs[-1] * (gbar * self.top)  # h̄_L
        for index in reversed(range(depth)):
            if index < depth - 1:
                below = torch.addcmul(below, outputs[index + 1], sbar[index], value=-2.0)  # h̄_l
            abar = tanh_backward(below, outputs[index + 1])  # ā_l
            self.adjoints[index].append(abar)
            self.layer_inputs[index].append(outputs[index])
            below = abar @ self.weights[index]
        if self.form is not None:
            self.inputs.append(outputs[0])
            self.vectors.append(v)
            below = torch.addmm(below, v, self.form)
        return below

    def parameter_gradients(self) -> list[torch.Tensor | None]:
        """``[W̄_1..W̄_L, b̄_1..b̄_L, w̄, S̄]`` summed over every ``backward`` (``S̄`` ``None`` without a form)."""
        weights, biases = [], []
        for chain, chain_adjoints, adjoints, inputs in zip(
            self.chain, self.chain_adjoints, self.adjoints, self.layer_inputs, strict=True
        ):
            left = torch.cat(chain + adjoints)  # the ā_l rows are its second half
            weights.append(left.t() @ torch.cat(chain_adjoints + inputs))
            biases.append(left[left.shape[0] // 2 :].sum(0))
        top = torch.ops.aten.tanh_backward(torch.cat(self.top_adjoints), torch.cat(self.top_outputs))
        form = None if self.form is None else torch.cat(self.inputs).t() @ torch.cat(self.vectors)
        return [*weights, *biases, top.sum(0, keepdim=True), form]


def _part_tensors(model: HamiltonianNet, block: int) -> list[torch.Tensor | None]:
    """``[W_1..W_L, b_1..b_L, w, S]`` of ``networks[block]`` (``S`` the symmetrised quadratic form or ``None``)."""
    network = model.networks[block]
    linears = [layer for layer, _ in network.hidden_layers]
    form = model.quadratic_form(block) if model.quadratic else None
    return [*(layer.weight for layer in linears), *(layer.bias for layer in linears), network.output_layer.weight, form]


class _LeapfrogWindow(torch.autograd.Function):
    """``(q_0, p_0, θ_K, θ_V) ↦ (Q, P)``, the states every ``every`` steps of leapfrog, with the discrete adjoint."""

    @staticmethod
    def forward(
        ctx: Any, step_size: float, steps: int, every: int, depth: int, q: torch.Tensor, p: torch.Tensor, *tensors: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        size = 2 * depth + 2
        kinetic, potential = (
            _Part(list(part[:depth]), list(part[depth : 2 * depth]), part[2 * depth], part[2 * depth + 1])
            for part in (tensors[:size], tensors[size:])
        )
        half = -0.5 * step_size
        force, record = potential(q)
        forces, drifts = [record], []
        positions, momenta = [], []
        for j in range(steps):
            p = torch.add(p, force, alpha=half)
            velocity, record = kinetic(p)
            drifts.append(record)
            q = torch.add(q, velocity, alpha=step_size)
            force, record = potential(q)
            forces.append(record)
            p = torch.add(p, force, alpha=half)
            if (j + 1) % every == 0:
                positions.append(q)
                momenta.append(p)
        ctx.parts, ctx.records, ctx.numbers = (kinetic, potential), (drifts, forces), (step_size, steps, every)
        return torch.stack(positions), torch.stack(momenta)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, position_grad: torch.Tensor, momentum_grad: torch.Tensor) -> tuple[Any, ...]:
        kinetic, potential = ctx.parts
        drifts, forces = ctx.records
        step_size, steps, every = ctx.numbers
        half = -0.5 * step_size
        qbar = pbar = force_bar = None
        for j in reversed(range(steps)):
            if (j + 1) % every == 0:
                index = (j + 1) // every - 1
                qbar = position_grad[index] if qbar is None else qbar + position_grad[index]
                pbar = momentum_grad[index] if pbar is None else pbar + momentum_grad[index]
            # p_{j+1} = p½ − h/2 d_{j+1}, with d_{j+1} also in the first half kick of step j + 1
            force_bar = pbar * half if force_bar is None else torch.add(force_bar, pbar, alpha=half)
            qbar = qbar + potential.backward(force_bar, forces[j + 1])
            # q_{j+1} = q_j + h ∂K/∂p(p½), p½ = p_j − h/2 d_j
            pbar = pbar + kinetic.backward(qbar * step_size, drifts[j])
            force_bar = pbar * half
        qbar = qbar + potential.backward(force_bar, forces[0])
        grads = [*kinetic.parameter_gradients(), *potential.parameter_gradients()]
        return None, None, None, None, qbar, pbar, *grads


def leapfrog_window(model: HamiltonianNet, x0: torch.Tensor, step_size: float, steps: int, every: int) -> torch.Tensor:
    """The states ``x_{every}, x_{2·every}, …, x_{steps}`` of ``steps`` leapfrog steps of size ``step_size`` from
    ``x0`` (``(B, 2n)``) for the model's ``H_θ = K_θ(p) + V_θ(q)``, shape ``(steps / every, B, 2n)``.

    The same states as ``canonflow.integrators.leapfrog(model, x0, step_size, steps, trajectory=True)[every::every]``
    (to round-off); gradients with respect to ``x0`` and the parameters come from the discrete adjoint (see the
    module doc; first order only: differentiating those gradients again raises). ``model`` must pass
    ``leapfrog_window_supported``, ``steps`` be a multiple of ``every``, and ``step_size`` be a float.
    """
    who = "leapfrog_window"
    if not leapfrog_window_supported(model):
        raise ValueError(
            f"{who}: expected a separable, undamped HamiltonianNet with tanh networks and no polynomial part; "
            f"integrate other models with canonflow.integrators.leapfrog"
        )
    if not isinstance(step_size, float):
        raise TypeError(f"{who}: expected step_size to be a float, got {type(step_size).__name__}")
    check_integrator_input(model, x0, step_size, steps, who, needs_separable=True)
    n = model.n
    if x0.shape[-1] != 2 * n:
        raise ValueError(f"{who}: expected x0 of shape (B, {2 * n}) for the model's n={n}, got {tuple(x0.shape)}")
    check_positive_int(every, "every", who)
    if steps % every:
        raise ValueError(f"{who}: steps={steps} must be a multiple of every={every}")
    tensors = [*_part_tensors(model, 0), *_part_tensors(model, 1)]
    depth = len(model.networks[0].hidden_layers)
    positions, momenta = _LeapfrogWindow.apply(step_size, steps, every, depth, x0[:, :n], x0[:, n:], *tensors)
    return torch.cat([positions, momenta], -1)
