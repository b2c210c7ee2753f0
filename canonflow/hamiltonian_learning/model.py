"""The learned Hamiltonian ``H_θ(q, p)``: an MLP, optionally separable, plus an optional closed-form part.

A tanh MLP saturates outside its training data; the closed-form part — a quadratic form (``quadratic=True``)
or a polynomial of degree ``d`` (``polynomial=d``) — carries a quadratic or polynomial growth of ``H`` there.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations_with_replacement
from typing import Any

import torch
from torch import nn

from canonflow.autodiff import vector_jacobian_product
from canonflow.checkpoint import register_model
from canonflow.nn import MLP
from canonflow.phase_space import split
from canonflow.validation import as_dtype, check_non_negative_int, check_phase_space, check_positive_int

__all__ = ["DAMPING_START", "HamiltonianNet", "mlp_input_gradient", "model_dtype"]

DAMPING_START = 0.1
"""The friction ``γ`` a damped ``HamiltonianNet`` starts from."""


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of ``model``'s first parameter (the default dtype for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return torch.get_default_dtype() if parameter is None else parameter.dtype


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

    With ``damping=True`` the dynamics are the damped (conformal Hamiltonian) equations ``q̇ = ∂H_θ/∂p``,
    ``ṗ = −∂H_θ/∂q − γ p`` with a learned friction ``γ = ρ² ≥ 0`` (the property ``damping``, starting at
    ``DAMPING_START``), along which ``dH_θ/dt = −γ pᵀ∂H_θ/∂p``; for ``H_θ = ½pᵀM⁻¹p + V(q)`` this is the
    port-Hamiltonian form ``ẋ = (Ω − R)∇H_θ`` with ``R = diag(0, γM) ⪰ 0`` (Rayleigh friction ``−γM q̇``). The
    conformally symplectic integrators ``canonflow.integrators.conformal_leapfrog`` and ``conformal_midpoint``
    integrate it; the conservative ones refuse a damped model. ``damping=False`` (default): ``ẋ = Ω∇H_θ``.
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
        damping: bool = False,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.n = check_positive_int(n, "n", who)
        torch_dtype = as_dtype(dtype, who)
        self.hidden, self.depth, self.activation = hidden, depth, activation
        self.separable = bool(separable)
        self.quadratic = bool(quadratic)
        self.dtype_name = dtype
        check_non_negative_int(depth, "depth", who)
        check_non_negative_int(polynomial, "polynomial (a degree)", who)
        if polynomial >= 2 and self.quadratic:
            raise ValueError(f"{who}: polynomial={polynomial} already contains the quadratic form; drop quadratic=True")
        self.polynomial = polynomial
        if not isinstance(damping, bool):
            raise TypeError(f"{who}: expected damping to be a bool, got {damping!r}")
        self.damped = damping
        if damping:  # γ = ρ² ≥ 0, starting at γ = DAMPING_START
            self.damping_root = nn.Parameter(torch.tensor(DAMPING_START**0.5))
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
        self.to(torch_dtype)

    @property
    def separable_parts(self) -> bool:
        """``True`` for a separable model: ``kinetic(p)`` and ``potential(q)`` sum to ``H_θ``, so the splitting
        integrators take ``∂V/∂q`` and ``∂K/∂p`` from one network each (``integrators.has_separable_parts``)."""
        return self.separable

    @property
    def damping(self) -> torch.Tensor | None:
        """The friction ``γ = ρ² ≥ 0`` (a 0-dim tensor) of a damped model, ``None`` for a conservative one."""
        return self.damping_root.square() if self.damped else None

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

    def quadratic_form(self, block: int) -> torch.Tensor:
        """``S = (F + Fᵀ)/2``, the symmetrised ``quadratic_forms[block]`` (``F``) of a ``quadratic=True`` model: the
        closed-form part is ``½ zᵀ S z`` and its gradient ``S z`` (block 0: all of ``x``, or ``p``; 1: ``q``)."""
        form = self.quadratic_forms[block]
        return 0.5 * (form + form.T)

    def _quadratic(self, z: torch.Tensor, block: int) -> torch.Tensor:
        """``½ zᵀ S z`` with ``S`` the symmetrised ``quadratic_forms[block]``."""
        return 0.5 * ((z @ self.quadratic_form(block)) * z).sum(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``H_θ(x)`` of shape ``(B,)`` for ``x`` of shape ``(B, 2n)``."""
        check_phase_space(x, self.n, type(self).__name__)
        if self.separable:
            q, p = split(x)
            return self.kinetic(p) + self.potential(q)
        return self._closed_form(self.networks[0](x) if self.networks else None, x, 0)

    def kinetic(self, p: torch.Tensor) -> torch.Tensor:
        """``K_θ(p)`` of shape ``(B,)`` (separable models only)."""
        self._require_separable("kinetic")
        return self._closed_form(self.networks[0](p) if self.networks else None, p, 0)

    def potential(self, q: torch.Tensor) -> torch.Tensor:
        """``V_θ(q)`` of shape ``(B,)`` (separable models only)."""
        self._require_separable("potential")
        return self._closed_form(self.networks[1](q) if self.networks else None, q, 1)

    def kinetic_gradient(self, p: torch.Tensor) -> torch.Tensor:
        """``∂K_θ/∂p`` of shape ``(B, n)`` (separable models only), in closed form (see ``part_gradients``)."""
        return self.part_gradients()[0](p)

    def potential_gradient(self, q: torch.Tensor) -> torch.Tensor:
        """``∂V_θ/∂q`` of shape ``(B, n)`` (separable models only), in closed form (see ``part_gradients``)."""
        return self.part_gradients()[1](q)

    def part_gradients(self) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
        """``(p ↦ ∂K_θ/∂p, q ↦ ∂V_θ/∂q)``, ``(B, n) -> (B, n)`` each, for the current parameters (separable only).

        The network's input gradient is the backward recursion written out as forward operations
        (``mlp_input_gradient``), the quadratic form's is ``S z``; only a polynomial part is differentiated by
        autograd. The values equal autograd's gradients of ``kinetic`` and ``potential`` (to round-off) and are
        differentiable, but training through them is a first-order backward pass, not a double backward. The
        parameters are gathered once per call: the splitting integrators call this once per integration
        (``integrators.HamiltonianGradient``) and take every kick and drift from the two functions.
        """
        self._require_separable("part_gradients")
        return self._part_gradient(0), self._part_gradient(1)

    def _part_gradient(self, block: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """``z ↦ ∇`` of ``kinetic`` (``block`` 0, ``z = p``) or ``potential`` (``block`` 1, ``z = q``)."""
        network = mlp_input_gradient(self.networks[block]) if self.networks else None
        form = self.quadratic_form(block) if self.quadratic else None

        def gradient(z: torch.Tensor) -> torch.Tensor:
            terms = [] if network is None else [network(z)]
            if form is not None:
                terms.append(z @ form)
            if self.polynomial:
                ones = z.new_ones(z.shape[0])
                terms.append(
                    vector_jacobian_product(lambda y: self._polynomial(y, block), z, ones, who="HamiltonianNet")
                )
            value = terms[0]
            for term in terms[1:]:
                value = value + term
            return value

        return gradient

    def _closed_form(self, value: torch.Tensor | None, z: torch.Tensor, block: int) -> torch.Tensor:
        """``value`` (``None``: no network) plus the quadratic form and/or polynomial of block ``block`` (0: all of
        x, or p; 1: q). Without a network the sum starts at the first closed-form term, not at a tensor of zeros:
        the same values, with fewer operations for autograd to record and differentiate again."""
        terms = [] if value is None else [value]
        if self.quadratic:
            terms.append(self._quadratic(z, block))
        if self.polynomial:
            terms.append(self._polynomial(z, block))
        value = terms[0]
        for term in terms[1:]:
            value = value + term
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
            "damping": self.damped,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HamiltonianNet:
        """Rebuild a model from ``config()`` (weights are loaded separately)."""
        return cls(**config)

    def extra_repr(self) -> str:
        damped = ", damping=True" if self.damped else ""
        return f"n={self.n}, separable={self.separable}, dtype={self.dtype_name}{damped}"


def _activation_backward(
    activation: nn.Module, grad: torch.Tensor, pre: torch.Tensor, post: torch.Tensor
) -> torch.Tensor:
    """``grad ⊙ σ'(a)`` for one of ``canonflow.nn.ACTIVATIONS`` at ``a = pre`` (``post = σ(a)``): torch's own
    backward kernel of the activation (the formula autograd uses, itself differentiable; one graph node), or for
    SiLU the formula written out."""
    aten = torch.ops.aten
    if isinstance(activation, nn.Tanh):
        return aten.tanh_backward(grad, post)
    if isinstance(activation, nn.Softplus):
        return aten.softplus_backward(grad, pre, activation.beta, activation.threshold)
    if isinstance(activation, nn.SiLU):  # silu_backward has no derivative of its own: σ(a)(1 + a(1 − σ(a)))
        sigmoid = torch.sigmoid(pre)
        return grad * (sigmoid * (1.0 + pre * (1.0 - sigmoid)))
    if isinstance(activation, nn.GELU):
        return aten.gelu_backward(grad, pre, approximate=activation.approximate)
    raise ValueError(f"mlp_input_gradient: no closed-form derivative for activation {type(activation).__name__}")


def mlp_input_gradient(mlp: MLP) -> Callable[[torch.Tensor], torch.Tensor]:
    """``z ↦ ∇_z mlp(z)`` of a scalar ``canonflow.nn.MLP`` (one output), ``(B, d) -> (B, d)``, in closed form.

    For ``a_l = W_l h_{l−1} + b_l``, ``h_l = σ(a_l)`` (``h_0 = z``) and the output ``wᵀ h_L``, the gradient is the
    backward recursion ``g_L = w ⊙ σ'(a_L)``, ``g_{l−1} = (g_l W_l) ⊙ σ'(a_{l−1})``, ``∇_z = g_1 W_1``, computed with
    forward operations: differentiating it (training) is one ordinary backward pass instead of autograd's double
    backward through ``autograd.grad(create_graph=True)``. The weights are gathered (and transposed) once, when
    this is called, so the returned function serves many evaluations with the current parameters (an integration).
    """
    linears = [(layer.weight, layer.weight.t(), layer.bias) for layer, _ in mlp.hidden_layers]
    activations = [activation for _, activation in mlp.hidden_layers]
    output = mlp.output_layer.weight  # (1, width): the output row, broadcast over the batch by the first backward step

    def gradient(z: torch.Tensor) -> torch.Tensor:
        stages = []
        h = z
        for (_, transposed, bias), activation in zip(linears, activations, strict=True):
            pre = torch.addmm(bias, h, transposed)
            h = activation(pre)
            stages.append((activation, pre, h))
        g = output
        for (weight, _, _), (activation, pre, post) in zip(reversed(linears), reversed(stages), strict=True):
            g = _activation_backward(activation, g, pre, post) @ weight
        return g

    return gradient


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
