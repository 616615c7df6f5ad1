"""Ray Tune trainables that train child networks: datasets, cost metrics and training loops.

Importing this package registers the built-in trainables with ``raynas`` (``classify``).
"""

from trainables import classify

__all__ = ["classify"]
