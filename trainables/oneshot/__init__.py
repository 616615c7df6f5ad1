"""One-shot NAS trainables: the search runs inside one trial on a weight-sharing supernet.

Importing this package registers ``darts`` (first/second-order DARTS), ``enas`` (ENAS) and
``gdas`` (GDAS). The experiment's ``space`` (``nb201`` or ``darts``, with its ``space_args``)
is the supernet's space, ``trainable_args`` hold the method's options, and the outer search
(``random`` or ``grid``) only seeds the trials; see :mod:`trainables.oneshot.common`.
"""

from trainables.oneshot import darts, enas, gdas
from trainables.oneshot.common import DERIVED_ARCH_FILE

__all__ = ["DERIVED_ARCH_FILE", "darts", "enas", "gdas"]
