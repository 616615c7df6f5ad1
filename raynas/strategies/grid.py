"""``grid``: every member of a small discrete space once, in a seeded random order.

The order is a permutation of the member indices drawn from the searcher's RNG. It is not part
of the saved state: the state keeps the RNG's state from before the draw (a few hundred bytes)
and the cursor, and the permutation is drawn again from it when first needed, so a snapshot of
a grid over 1e6 members stays small while a restored searcher walks the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from raynas.space import Arch, Space
from raynas.strategies import register_strategy
from raynas.strategies.base import NASSearcher, StrategyError

GRID_LIMIT = 1_000_000
#: Attributes rebuilt on demand, never saved: the permutation and the enumerated members.
_DERIVED = ("_order", "_members")


@register_strategy("grid", description="exhaustive, seeded order (spaces up to 1e6 archs)")
class GridSearch(NASSearcher):
    """Enumerate the whole space in a seeded random order; FINISHED when done."""

    needs_discrete = True

    def __init__(self, space: Space, *, shuffle: bool = True, **kwargs: object) -> None:
        super().__init__(space, **kwargs)  # type: ignore[arg-type]
        card = space.cardinality or 0
        if card > GRID_LIMIT:
            raise StrategyError(
                f"grid refuses spaces over {GRID_LIMIT:,} architectures; {space.name!r} has "
                f"{card:,} (use 'random' or a learning strategy)"
            )
        self.size = card
        self.shuffle = shuffle
        #: The RNG's state before the order was drawn (None: no shuffle, index order).
        self.order_rng_state: Mapping[str, Any] | None = None
        self._order: np.ndarray | None = None
        if shuffle:
            self.order_rng_state = self.rng.bit_generator.state
            self._order = np.arange(card, dtype=np.int64)
            self.rng.shuffle(self._order)  # the same draws as shuffling a list of the indices
        self._members: list[Arch] | None = None
        self.cursor = 0

    def _draw_order(self) -> np.ndarray:
        """The permutation of the member indices, as drawn when the searcher was made."""
        order = np.arange(self.size, dtype=np.int64)
        if self.order_rng_state is not None:
            rng = np.random.Generator(type(self.rng.bit_generator)())
            rng.bit_generator.state = self.order_rng_state
            rng.shuffle(order)  # the same draws as shuffling a list of the indices
        return order

    @property
    def order(self) -> np.ndarray:
        """Member indices in the order the grid visits them."""
        if self._order is None:
            self._order = self._draw_order()
        return self._order

    def propose(self) -> Arch | None:
        if self._members is None:
            self._members = list(self.space.enumerate())
        order = self.order
        while self.cursor < len(order):
            arch = self._members[int(order[self.cursor])]
            self.cursor += 1
            if not self.is_seen(arch):
                return arch
        return None

    def _transient(self) -> tuple[str, ...]:
        return (*super()._transient(), *_DERIVED)

    def _load_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        legacy = state.pop("order", None)  # a checkpoint that saved the whole order
        super()._load_state(state)
        self._members = None
        self._order = None if legacy is None else np.asarray(legacy, dtype=np.int64)
        if legacy is not None:
            self.size = len(legacy)
            self.order_rng_state = None
