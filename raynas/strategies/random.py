"""``random``: uniform random sampling of the space, never repeating an architecture."""

from __future__ import annotations

from raynas.space import Arch
from raynas.strategies import register_strategy
from raynas.strategies.base import NASSearcher


@register_strategy("random", description="random sampling, de-duplicated")
class RandomSearch(NASSearcher):
    """Random search: every proposal a fresh sample (Li & Talwalkar 2019's strong baseline)."""

    def propose(self) -> Arch | None:
        return self.random_unseen()
