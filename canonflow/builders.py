"""Builders for standard stacks of canonical layers."""

from __future__ import annotations

from canonflow.nn import IrrotationalMLP
from canonflow.transforms import LinearSymplectic, MomentumShear, PositionShear, SymplecticComposite, ZeroCenter
from canonflow.validation import check_positive_int

__all__ = ["canonical_flow"]


def canonical_flow(
    n: int,
    blocks: int = 4,
    hidden: int = 64,
    householder: int | None = None,
    full_linear: bool = False,
    zero_center: bool = True,
    activation: str = "tanh",
) -> SymplecticComposite:
    """The standard canonical flow on ``(B, 2n)``: a ``SymplecticComposite`` (an nflows ``CompositeTransform``) of

    ``ZeroCenter`` (if ``zero_center``), then ``blocks`` times
    ``LinearSymplectic(n, householder, full_linear) -> MomentumShear(IrrotationalMLP(n, hidden))
    -> PositionShear(IrrotationalMLP(n, hidden))``.

    ``forward`` maps data to latent, ``inverse`` latent to data; ``logabsdet`` is identically zero.
    """
    who = "canonical_flow"
    check_positive_int(n, "n", who)
    check_positive_int(blocks, "blocks", who)
    check_positive_int(hidden, "hidden", who)
    layers = [ZeroCenter(n)] if zero_center else []
    for _ in range(blocks):
        layers += [
            LinearSymplectic(n, householder=householder, full=full_linear),
            MomentumShear(IrrotationalMLP(n, hidden, activation)),
            PositionShear(IrrotationalMLP(n, hidden, activation)),
        ]
    return SymplecticComposite(layers)
