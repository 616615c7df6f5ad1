"""Weight-sharing supernets for one-shot NAS (DARTS, ENAS, GDAS) over the built-in spaces.

* :class:`~search_spaces.models.supernet.mixed.MixedOp` -- every candidate op of one edge,
  mixed op by op (memory-frugal) or run as a single path.
* :class:`~search_spaces.models.supernet.nb201.NB201Supernet` -- the ``nb201`` space.
* :class:`~search_spaces.models.supernet.darts.DartsSupernet` -- the ``darts`` space.
* :class:`~search_spaces.models.supernet.mobilenet.MobileNetSupernet` -- the ``mobilenet``
  space, elastic in depth, kernel, expansion, SE and width (train once, search many: the
  ``supernet`` and ``subnet`` trainables, not the one-shot methods).

:func:`build_supernet` builds the supernet of a space object by its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_spaces.models.supernet.darts import DartsSupernet
from search_spaces.models.supernet.mixed import PARAMETER_FREE_OPS, MixedOp, Supernet
from search_spaces.models.supernet.mobilenet import MobileNetSupernet
from search_spaces.models.supernet.nb201 import NB201Supernet

__all__ = [
    "PARAMETER_FREE_OPS",
    "SIZE_ARGS",
    "SUPERNET_SPACES",
    "DartsSupernet",
    "MixedOp",
    "MobileNetSupernet",
    "NB201Supernet",
    "Supernet",
    "build_supernet",
]

#: The arguments of each space that size its supernet (the rest come from the space itself).
SIZE_ARGS: dict[str, tuple[str, ...]] = {"nb201": ("C", "N"), "darts": ("C", "layers")}

#: Spaces that have a supernet.
SUPERNET_SPACES = tuple(SIZE_ARGS)


def build_supernet(
    space: Any,
    *,
    num_classes: int,
    in_channels: int = 3,
    size: Mapping[str, int] | None = None,
) -> Supernet:
    """The supernet of a built-in space, sized by ``size`` or else by the space's arguments.

    ``nb201`` uses ``C`` and ``N`` and the space's ``ops``; ``darts`` ``C`` and ``layers`` with
    DARTS' eight candidate ops (``none`` included, as in the DARTS search). ``size`` holds the
    search network's size under the space's own argument names (``{"C": 16, "layers": 8}``,
    DARTS' search network, for a ``darts`` space whose evaluation network is ``C=36,
    layers=20``); a key it leaves out comes from the space.

    Args:
        space: An ``nb201`` or ``darts`` space object.
        num_classes: Classifier outputs.
        in_channels: Image channels.
        size: Search size overrides, keys from :data:`SIZE_ARGS` of the space.

    Returns:
        The supernet.

    Raises:
        ValueError: The space has no supernet, or ``size`` has a key it does not size by.
    """
    name = getattr(space, "name", None)
    if name not in SIZE_ARGS:
        raise ValueError(
            f"space: {name!r} has no supernet; one-shot methods support {SUPERNET_SPACES}"
        )
    size = dict(size or {})
    unknown = sorted(set(size) - set(SIZE_ARGS[name]))
    if unknown:
        raise ValueError(f"size: {unknown} do not size a {name} supernet; use {SIZE_ARGS[name]}")
    dims = {key: size.get(key, getattr(space, key)) for key in SIZE_ARGS[name]}
    if name == "nb201":
        return NB201Supernet(
            **dims, primitives=tuple(space.ops), num_classes=num_classes, in_channels=in_channels
        )
    return DartsSupernet(**dims, num_classes=num_classes, in_channels=in_channels)
