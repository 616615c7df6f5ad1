"""One-shot NAS trainables: the search runs inside one trial on a weight-sharing supernet.

``darts`` (first/second-order DARTS), ``enas`` (ENAS) and ``gdas`` (GDAS), registered by
:mod:`trainables`. The experiment's ``space`` (``nb201`` or ``darts``, with its
``space_args``) is the supernet's space, ``trainable_args`` hold the method's options, and the
outer search (``random`` or ``grid``) only seeds the trials; see
:mod:`trainables.oneshot.common`.
"""
