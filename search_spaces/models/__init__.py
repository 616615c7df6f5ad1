"""Pure-PyTorch evaluation networks built by the built-in search spaces.

* :mod:`~search_spaces.models.ops` -- NAS-Bench-201 and DARTS operation tables.
* :mod:`~search_spaces.models.nb201_net` -- the NAS-Bench-201 evaluation network.
* :mod:`~search_spaces.models.genotypes` -- DARTS genotypes and their parser.
* :mod:`~search_spaces.models.darts_net` -- the DARTS CIFAR evaluation network.
* :mod:`~search_spaces.models.mobilenet_net` -- a macro inverted-residual network.
"""

from __future__ import annotations

from search_spaces.models.darts_net import DARTSNetwork
from search_spaces.models.genotypes import Genotype, parse_genotype
from search_spaces.models.mobilenet_net import DEFAULT_STAGES, MobileNetNetwork, default_blocks
from search_spaces.models.nb201_net import NB201Network, nb201_string, parse_nb201_string

__all__ = [
    "DEFAULT_STAGES",
    "DARTSNetwork",
    "Genotype",
    "MobileNetNetwork",
    "NB201Network",
    "default_blocks",
    "nb201_string",
    "parse_genotype",
    "parse_nb201_string",
]
