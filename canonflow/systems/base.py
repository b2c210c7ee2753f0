"""The base class of every Hamiltonian system in the catalogue.

A system is a Hamiltonian ``H(q, p)`` on phase space ``ℝ^{2n}`` with points batched as ``x`` of shape
``(B, 2n)`` laid out ``[q_1..q_n, p_1..p_n]`` (see :mod:`canonflow.phase_space`). Hamilton's equations are
``ẋ = Ω ∇H(x)``, i.e. ``q̇ = ∂H/∂p``, ``ṗ = −∂H/∂q``.

A system of one's own needs no subclass: :meth:`HamiltonianSystem.from_callable` wraps a function ``H(x)``
and :meth:`HamiltonianSystem.from_potential` a potential ``V(q)`` with the kinetic energy ``Σ p_k²/(2m_k)``
(a :class:`CallableSystem`); :func:`as_system` accepts either a system or a plain callable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from canonflow.phase_space import hamiltonian_vector_field, join, split
from canonflow.validation import check_energy, check_phase_space, check_positive_int, check_real, validation_enabled

__all__ = [
    "CallableSystem",
    "HamiltonianSystem",
    "InitialSampler",
    "Quantity",
    "as_system",
    "check_masses",
    "normal_draws",
    "uniform_draws",
]

Quantity = Callable[[torch.Tensor], torch.Tensor]
"""A scalar function of phase space: ``(B, 2n) -> (B,)``."""

InitialSampler = Callable[[int, torch.Generator | None], torch.Tensor]
"""``sample_initial(num, generator) -> (num, 2n)``: initial states drawn with ``generator`` (``None``: torch's global
generator), in float64 on the CPU by convention."""


class HamiltonianSystem:
    """A Hamiltonian system ``H(q, p)`` with ``n`` degrees of freedom.

    Attributes:
        n: degrees of freedom; phase-space points have shape ``(B, 2n)``.
        name: the registry name of the system (see :func:`canonflow.systems.get_system`).
        separable: whether ``H(q, p) = T(p) + V(q)``; then :meth:`kinetic` and :meth:`potential` exist.

    A system is callable: ``system(x)`` is ``system.hamiltonian(x)``, a batched, differentiable ``(B,)``
    tensor in the dtype and device of ``x``. Inputs are validated (shape, floating dtype, finite values) unless
    validation is switched off with ``canonflow.set_validation(False)``.

    Your own system: ``HamiltonianSystem.from_callable(H, n)`` (any ``H(x)``, ``(B, 2n) -> (B,)``) or
    ``HamiltonianSystem.from_potential(V, n, mass=m)`` (separable, ``H = Σ p_k²/(2m_k) + V(q)``); both take an
    optional ``sample_initial(num, generator) -> (num, 2n)``. The catalogue's systems subclass this class and
    implement ``_hamiltonian(q, p)`` (or, when separable, ``_kinetic(p)`` and ``_potential(q)``; the default
    kinetic energy is ``|p|²/2``), ``_sample_initial(num, generator)`` and optionally ``_extra_conserved()``.
    """

    name: str = "system"
    separable: bool = True

    def __init__(self, n: int) -> None:
        self.n = check_positive_int(n, "n", type(self).__name__)

    # ------------------------------------------------------------------ your own system
    @staticmethod
    def from_callable(
        hamiltonian: Quantity,
        n: int,
        *,
        sample_initial: InitialSampler | None = None,
        name: str | None = None,
    ) -> CallableSystem:
        """The system of a Hamiltonian function ``H(x)``, ``x`` of shape ``(B, 2n)`` -> energies ``(B,)``.

        ``H`` must be differentiable by autograd (Hamilton's equations ``ẋ = Ω∇H`` are taken by it) and is
        treated as non-separable, so explicit splitting integrators (leapfrog) refuse it; for ``H = T(p) +
        V(q)`` use :meth:`from_potential`. ``sample_initial(num, generator)`` returns ``(num, 2n)`` initial
        states; without it :meth:`sample_initial` raises ``NotImplementedError`` naming what to pass, and
        :func:`canonflow.data.trajectories` needs explicit ``initial`` states. ``name`` (default: ``H``'s
        ``__name__``, or ``"custom"`` for a lambda) appears in errors and in ``TrajectoryData.system_name``.
        The shape of ``H``'s value is checked on every call, with an error naming the system.

        >>> import torch
        >>> quartic = HamiltonianSystem.from_callable(lambda x: 0.5 * x[:, 1] ** 2 + 0.25 * x[:, 0] ** 4, 1)
        >>> quartic(torch.tensor([[1.0, 2.0]], dtype=torch.float64))
        tensor([2.2500], dtype=torch.float64)
        """
        return CallableSystem(n, hamiltonian=hamiltonian, sample_initial=sample_initial, name=name)

    @staticmethod
    def from_potential(
        potential: Quantity,
        n: int,
        *,
        mass: float | Sequence[float] = 1.0,
        sample_initial: InitialSampler | None = None,
        name: str | None = None,
    ) -> CallableSystem:
        """The separable system ``H(q, p) = Σ_k p_k²/(2 m_k) + V(q)`` of a potential ``V``, ``q`` of shape
        ``(B, n)`` -> ``(B,)``.

        ``mass``: one positive mass for every degree of freedom or a length-``n`` sequence of them. The system
        is separable: :meth:`potential` is ``V``, :meth:`kinetic` is ``Σ p_k²/(2m_k)``, and leapfrog, Yoshida
        and separable models accept it. ``sample_initial`` and ``name`` (default: ``V``'s ``__name__``, or
        ``"custom"``) are as in :meth:`from_callable`. The shape of ``V``'s value is checked on every call.

        >>> import torch
        >>> morse = HamiltonianSystem.from_potential(lambda q: (1 - torch.exp(-q[:, 0])) ** 2, 1, mass=2.0)
        >>> morse.kinetic(torch.tensor([[2.0]], dtype=torch.float64))
        tensor([1.], dtype=torch.float64)
        """
        return CallableSystem(n, potential=potential, mass=mass, sample_initial=sample_initial, name=name)

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
        """Hamilton's equations ``ẋ = Ω ∇H(x) = (∂H/∂p, −∂H/∂q)``, shape ``(B, 2n)`` (via autograd, unless the
        system has it in closed form)."""
        self._check_x(x, "vector_field")
        return self._vector_field(x)

    def _vector_field(self, x: torch.Tensor) -> torch.Tensor:
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


class CallableSystem(HamiltonianSystem):
    """A system defined by functions rather than by a subclass; build one with
    :meth:`HamiltonianSystem.from_callable` (``H(x)``, non-separable) or :meth:`HamiltonianSystem.from_potential`
    (``V(q)`` with ``T(p) = Σ_k p_k²/(2m_k)``, separable).

    Args:
        n: degrees of freedom.
        hamiltonian: ``H(x)``, ``(B, 2n) -> (B,)``; exclusive with ``potential``.
        potential: ``V(q)``, ``(B, n) -> (B,)``; exclusive with ``hamiltonian``.
        mass: with ``potential``, one positive mass or ``n`` of them.
        sample_initial: ``(num, generator) -> (num, 2n)`` initial states, or ``None`` (then
            :meth:`sample_initial` raises ``NotImplementedError`` saying what to pass).
        name: the system's name in errors and data (default: the function's ``__name__``, or ``"custom"``).

    The energy is the only conserved quantity reported.
    """

    def __init__(
        self,
        n: int,
        *,
        hamiltonian: Quantity | None = None,
        potential: Quantity | None = None,
        mass: float | Sequence[float] = 1.0,
        sample_initial: InitialSampler | None = None,
        name: str | None = None,
    ) -> None:
        factory = "HamiltonianSystem.from_callable" if potential is None else "HamiltonianSystem.from_potential"
        n = check_positive_int(n, "n", factory)
        if (hamiltonian is None) == (potential is None):
            raise TypeError("CallableSystem: give exactly one of hamiltonian= and potential=")
        function = hamiltonian if potential is None else potential
        what = "H(x)" if potential is None else "V(q)"
        if not callable(function):
            raise TypeError(f"{factory}: expected {what} to be callable, got {type(function).__name__}")
        if sample_initial is not None and not callable(sample_initial):
            raise TypeError(
                f"{factory}: expected sample_initial to be a callable (num, generator) -> (num, 2n) or None, "
                f"got {type(sample_initial).__name__}"
            )
        if name is None:
            label = getattr(function, "__name__", "")
            name = label if label.isidentifier() else "custom"
        elif not isinstance(name, str) or not name:
            raise TypeError(f"{factory}: expected name to be a non-empty str, got {name!r}")
        masses = check_masses(mass, n, factory)
        super().__init__(n)
        self.name = name
        self.separable = potential is not None
        self.mass: tuple[float, ...] = masses
        self._function = function
        self._initial = sample_initial

    def _hamiltonian(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        if self.separable:
            return self._kinetic(p) + self._potential(q)
        return check_energy(self._function(join(q, p)), q.shape[0], f"{self._who}: H(x)")

    def _kinetic(self, p: torch.Tensor) -> torch.Tensor:
        mass = torch.tensor(self.mass, dtype=p.dtype, device=p.device)
        return 0.5 * (p * p / mass).sum(-1)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        value = self._function(q)
        if not isinstance(value, torch.Tensor) or value.shape != (q.shape[0],):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"{self._who}: V(q) must map q of shape (B, n) = ({q.shape[0]}, {self.n}) to (B,) = "
                f"({q.shape[0]},), got {shape}"
            )
        return value

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        if self._initial is None:
            factory = "from_potential" if self.separable else "from_callable"
            raise NotImplementedError(
                f"{self._who}: no initial states to draw; pass sample_initial=fn(num, generator) -> (num, "
                f"{2 * self.n}) to HamiltonianSystem.{factory}, or give the states yourself (e.g. "
                f"trajectories(system, num, times, initial=x0))"
            )
        x = self._initial(num, generator)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.shape != (num, 2 * self.n):
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{self._who}: sample_initial(num, generator) must return a floating tensor of shape "
                f"(num, 2n) = ({num}, {2 * self.n}), got {got}"
            )
        if not torch.isfinite(x).all():
            raise ValueError(f"{self._who}: sample_initial returned NaN or Inf")
        return x

    def _params(self) -> str:
        label = getattr(self._function, "__name__", type(self._function).__name__)
        if not self.separable:
            return f"n={self.n}, hamiltonian={label}, name={self.name!r}"
        mass = self.mass[0] if len(set(self.mass)) == 1 else list(self.mass)
        return f"n={self.n}, potential={label}, mass={mass}, name={self.name!r}"


def check_masses(mass: object, n: int, who: str) -> tuple[float, ...]:
    """``n`` positive masses from ``mass``: one finite number ``> 0`` for every degree of freedom, or a length-``n``
    sequence of them; else a ``TypeError`` or ``ValueError`` naming ``who``."""
    if isinstance(mass, (int, float)) and not isinstance(mass, bool):
        return (check_real(mass, "mass", who, positive=True),) * n
    if isinstance(mass, Sequence) and not isinstance(mass, str):
        masses = tuple(check_real(m, "mass[k]", who, positive=True) for m in mass)
        if len(masses) != n:
            raise ValueError(f"{who}: expected mass to be a number or have length n={n}, got {len(masses)}")
        return masses
    raise TypeError(f"{who}: expected mass to be a positive number or n of them, got {mass!r}")


def as_system(system: HamiltonianSystem | Quantity, n: int | None, who: str) -> HamiltonianSystem:
    """``system`` itself if it is a :class:`HamiltonianSystem`; a plain callable ``H(x)`` wrapped by
    :meth:`HamiltonianSystem.from_callable` with ``n`` degrees of freedom (``n`` required then); else a
    ``TypeError`` naming ``who``."""
    if isinstance(system, HamiltonianSystem):
        return system
    if not callable(system):
        raise TypeError(
            f"{who}: expected a HamiltonianSystem or a callable H(x), (B, 2n) -> (B,), got {type(system).__name__}"
        )
    if n is None:
        raise ValueError(
            f"{who}: a plain callable H(x) does not say its degrees of freedom n; give initial states of shape "
            f"(num, 2n), or pass HamiltonianSystem.from_callable(H, n, sample_initial=...)"
        )
    return HamiltonianSystem.from_callable(system, n)


def uniform_draws(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform float64 samples on ``[low, high)``."""
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def normal_draws(shape: tuple[int, ...], std: float, generator: torch.Generator | None) -> torch.Tensor:
    """Centred normal float64 samples with standard deviation ``std``."""
    return std * torch.randn(shape, generator=generator, dtype=torch.float64)
