"""Weight-sharing supernets for one-shot NAS (DARTS, ENAS, GDAS) over the built-in spaces.

* :class:`~search_spaces.models.supernet.mixed.MixedOp` -- every candidate op of one edge,
  mixed op by op (memory-frugal) or run as a single path.
* :class:`~search_spaces.models.supernet.nb201.NB201Supernet` -- the ``nb201`` space.
* :class:`~search_spaces.models.supernet.darts.DartsSupernet` -- the ``darts`` space.

:func:`build_supernet` builds the supernet of a space object by its name.
"""

from __future__ import annotations

from typing import Any

from search_spaces.models.supernet.darts import DartsSupernet
from search_spaces.models.supernet.mixed import PARAMETER_FREE_OPS, MixedOp, Supernet
from search_spaces.models.supernet.nb201 import NB201Supernet

__all__ = [
    "PARAMETER_FREE_OPS",
    "SUPERNET_SPACES",
    "DartsSupernet",
    "MixedOp",
    "NB201Supernet",
    "Supernet",
    "build_supernet",
]

#: Spaces that have a supernet.
SUPERNET_SPACES = ("nb201", "darts")


def build_supernet(space: Any, *, num_classes: int, in_channels: int = 3) -> Supernet:
    """The supernet of a built-in space, sized by the space's own arguments.

    ``nb201`` uses the space's ``C``, ``N`` and ``ops``; ``darts`` its ``C`` and ``layers``
    with DARTS' eight candidate ops (``none`` included, as in the DARTS search).

    Args:
        space: An ``nb201`` or ``darts`` space object.
        num_classes: Classifier outputs.
        in_channels: Image channels.

    Returns:
        The supernet.

    Raises:
        ValueError: The space has no supernet.
    """
    name = getattr(space, "name", None)
    if name == "nb201":
        return NB201Supernet(
            C=space.C,
            N=space.N,
            primitives=tuple(space.ops),
            num_classes=num_classes,
            in_channels=in_channels,
        )
    if name == "darts":
        return DartsSupernet(
            C=space.C, layers=space.layers, num_classes=num_classes, in_channels=in_channels
        )
    raise ValueError(f"space: {name!r} has no supernet; one-shot methods support {SUPERNET_SPACES}")
