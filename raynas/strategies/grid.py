"""``grid``: every member of a small discrete space once, in a seeded random order."""

from __future__ import annotations

from raynas.space import Arch, Space
from raynas.strategies import register_strategy
from raynas.strategies.base import NASSearcher, StrategyError

GRID_LIMIT = 1_000_000


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
        self.order = list(range(card))
        if shuffle:
            self.rng.shuffle(self.order)
        self._members: list[Arch] | None = None
        self.cursor = 0

    def propose(self) -> Arch | None:
        if self._members is None:
            self._members = list(self.space.enumerate())
        while self.cursor < len(self.order):
            arch = self._members[self.order[self.cursor]]
            self.cursor += 1
            if not self.is_seen(arch):
                return arch
        return None

    def get_state(self) -> dict[str, object]:
        state = super().get_state()
        state["_members"] = None  # rebuilt on demand; keeps checkpoints small
        return state
