"""The base class of every Hamiltonian system in the catalogue.

A system is a Hamiltonian ``H(q, p)`` on phase space ``ℝ^{2n}`` with points batched as ``x`` of shape
``(B, 2n)`` laid out ``[q_1..q_n, p_1..p_n]`` (see :mod:`canonflow.phase_space`). Hamilton's equations are
``ẋ = Ω ∇H(x)``, i.e. ``q̇ = ∂H/∂p``, ``ṗ = −∂H/∂q``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from canonflow.phase_space import hamiltonian_vector_field, split
from canonflow.validation import check_phase_space, check_positive_int, validation_enabled

__all__ = ["HamiltonianSystem", "Quantity", "normal_draws", "uniform_draws"]

Quantity = Callable[[torch.Tensor], torch.Tensor]
"""A scalar function of phase space: ``(B, 2n) -> (B,)``."""


class HamiltonianSystem:
    """A Hamiltonian system ``H(q, p)`` with ``n`` degrees of freedom.

    Attributes:
        n: degrees of freedom; phase-space points have shape ``(B, 2n)``.
        name: the registry name of the system (see :func:`canonflow.systems.get_system`).
        separable: whether ``H(q, p) = T(p) + V(q)``; then :meth:`kinetic` and :meth:`potential` exist.

    A system is callable: ``system(x)`` is ``system.hamiltonian(x)``, a batched, differentiable ``(B,)``
    tensor in the dtype and device of ``x``. Subclasses implement ``_hamiltonian(q, p)`` (or, when
    separable, ``_kinetic(p)`` and ``_potential(q)``; the default kinetic energy is ``|p|²/2``),
    ``_sample_initial`` and optionally ``_extra_conserved``. Inputs are validated (shape, floating dtype,
    finite values) unless validation is switched off with ``canonflow.set_validation(False)``.
    """

    name: str = "system"
    separable: bool = True

    def __init__(self, n: int) -> None:
        self.n = check_positive_int(n, "n", type(self).__name__)

    # ------------------------------------------------------------------ validation
    @property
    def _who(self) -> str:
        return f"{type(self).__name__} ({self.name!r})"

    def _check_x(self, x: torch.Tensor, method: str) -> None:
        check_phase_space(x, self.n, f"{self._who}.{method}")

    def _check_half(self, t: torch.Tensor, method: str, what: str) -> None:
        """Check a configuration or momentum batch of shape ``(B, n)``."""
        if not validation_enabled():
            return
        who = f"{self._who}.{method}"
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{who}: expected {what} as a torch.Tensor of shape (B, {self.n}), got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{who}: expected a floating-point tensor for {what}, got dtype {t.dtype}")
        if t.dim() != 2 or t.shape[-1] != self.n:
            raise ValueError(f"{who}: expected {what} of shape (B, n) = (B, {self.n}), got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{who}: {what} contains NaN or Inf")

    # ------------------------------------------------------------------ energy
    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:
        """The energy ``H(x)`` of a batch ``x`` of shape ``(B, 2n)``, returned with shape ``(B,)``."""
        self._check_x(x, "hamiltonian")
        q, p = split(x)
        return self._hamiltonian(q, p)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``H(x)``: the same as :meth:`hamiltonian`."""
        return self.hamiltonian(x)

    def kinetic(self, p: torch.Tensor) -> torch.Tensor:
        """The kinetic energy ``T(p)`` of momenta ``p`` of shape ``(B, n)`` -> ``(B,)`` (separable systems)."""
        self._require_separable("kinetic")
        self._check_half(p, "kinetic", "p")
        return self._kinetic(p)

    def potential(self, q: torch.Tensor) -> torch.Tensor:
        """The potential energy ``V(q)`` of positions ``q`` of shape ``(B, n)`` -> ``(B,)`` (separable systems)."""
        self._require_separable("potential")
        self._check_half(q, "potential", "q")
        return self._potential(q)

    def _require_separable(self, method: str) -> None:
        if not self.separable:
            raise NotImplementedError(
                f"{self._who}.{method}: the system is not separable (H is not T(p) + V(q)); use hamiltonian(x)"
            )

    def _hamiltonian(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        if not self.separable:
            raise NotImplementedError(f"{self._who}: a non-separable system must implement _hamiltonian")
        return self._kinetic(p) + self._potential(q)

    def _kinetic(self, p: torch.Tensor) -> torch.Tensor:
        return 0.5 * (p * p).sum(-1)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self._who}: _potential is not implemented")

    # ------------------------------------------------------------------ dynamics
    def vector_field(self, x: torch.Tensor) -> torch.Tensor:
        """Hamilton's equations ``ẋ = Ω ∇H(x) = (∂H/∂p, −∂H/∂q)``, shape ``(B, 2n)`` (via autograd)."""
        self._check_x(x, "vector_field")
        return hamiltonian_vector_field(self.hamiltonian, x)

    def conserved_quantities(self) -> dict[str, Quantity]:
        """Functions ``(B, 2n) -> (B,)`` constant along the flow, keyed by name; always includes ``"energy"``.

        Vector quantities contribute one entry per component (e.g. ``"angular_momentum_z"``).
        """
        quantities: dict[str, Quantity] = {"energy": self.hamiltonian}
        quantities.update(self._extra_conserved())
        return quantities

    def _extra_conserved(self) -> dict[str, Quantity]:
        return {}

    # ------------------------------------------------------------------ sampling
    def sample_initial(
        self, num: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
    ) -> torch.Tensor:
        """``num`` initial conditions of shape ``(num, 2n)`` drawn from the system's default region.

        The region is stated in each subclass's docstring. Sampling is done in float64 on the CPU with
        ``generator`` (for reproducibility) and the result is cast to ``dtype``.
        """
        check_positive_int(num, "num", f"{self._who}.sample_initial")
        if not dtype.is_floating_point:
            raise TypeError(f"{self._who}.sample_initial: expected a floating dtype, got {dtype}")
        x = self._sample_initial(num, generator)
        return x.to(dtype)

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError(f"{self._who}: _sample_initial is not implemented")

    # ------------------------------------------------------------------ misc
    def _params(self) -> str:
        return f"n={self.n}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params()})"


def uniform_draws(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform float64 samples on ``[low, high)``."""
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def normal_draws(shape: tuple[int, ...], std: float, generator: torch.Generator | None) -> torch.Tensor:
    """Centred normal float64 samples with standard deviation ``std``."""
    return std * torch.randn(shape, generator=generator, dtype=torch.float64)
