"""Ray Tune trainables that train child networks: datasets, cost metrics and training loops.

Importing this package registers the built-in trainables with ``raynas`` (``classify``,
``tabular``).
"""

from trainables import classify, oneshot, tabular

__all__ = ["classify", "oneshot", "tabular"]
