"""Ray Tune trainables that train child networks: datasets, cost metrics and training loops.

Importing this package registers the built-in trainables with ``raynas`` by name
(``classify``, ``tabular``, and the one-shot ``darts``, ``enas``, ``gdas``); each module is
imported on first lookup, so a driver that replays a table never imports torch.
"""

from raynas.registry import TRAINABLES

#: name -> (module:class, one-line description)
BUILTIN_TRAINABLES = {
    "classify": (
        "trainables.classify:ClassifyTrainable",
        "train a child network for classification",
    ),
    "tabular": ("trainables.tabular:TabularTrainable", "replay a tabular benchmark (no training)"),
    "darts": (
        "trainables.oneshot.darts:DartsTrainable",
        "one-shot DARTS (first/second order) on a supernet",
    ),
    "enas": (
        "trainables.oneshot.enas:EnasTrainable",
        "one-shot ENAS: LSTM controller over shared weights",
    ),
    "gdas": (
        "trainables.oneshot.gdas:GdasTrainable",
        "one-shot GDAS: Gumbel-softmax single-path sampling",
    ),
    "supernet": (
        "trainables.supernet:SupernetTrainable",
        "train a mobilenet supernet (single-path or sandwich sampling)",
    ),
    "subnet": (
        "trainables.supernet:SubnetTrainable",
        "evaluate a sub-network with weights inherited from a trained supernet",
    ),
}

for _name, (_target, _description) in BUILTIN_TRAINABLES.items():
    TRAINABLES.register_lazy(_name, _target, description=_description)
