"""``random``: uniform random sampling of the space, never repeating an architecture."""

from __future__ import annotations

from raynas.space import Arch
from raynas.strategies import register_strategy
from raynas.strategies.proxy import ProxyGuided


@register_strategy("random", description="random sampling, de-duplicated")
class RandomSearch(ProxyGuided):
    """Random search: every proposal a fresh sample (Li & Talwalkar 2019's strong baseline).

    With ``proxy`` (:class:`~raynas.strategies.proxy.ProxyGuided`) the first proposals are a
    proxy-ranked random pool of ``warmup_pool`` members, best first; then random again.
    """

    def propose(self) -> Arch | None:
        return self.draw_initial()
