"""The held-out splits a ``subnet`` trial evaluates: validation, and test with
``data.evaluate_test``."""

from __future__ import annotations

import math
from pathlib import Path

from tests.test_supernet_mobilenet import _experiment, _trainable
from trainables.supernet import SubnetTrainable, SupernetTrainable


def test_subnet_reports_the_test_split_after_validation_only_when_asked(tmp_path: Path) -> None:
    sup = _trainable(SupernetTrainable, tmp_path / "s", _experiment(tmp_path, "supernet", {}))
    sup.save_checkpoint(str(tmp_path))
    rows = {}
    for evaluate_test in (False, True):
        data = _experiment(tmp_path, "subnet", {"supernet": str(tmp_path), "bn_batches": 2})
        data["data"]["evaluate_test"] = evaluate_test
        rows[evaluate_test] = _trainable(
            SubnetTrainable, tmp_path / str(evaluate_test), data
        ).train()
    held_out = [k for k in rows[True] if k.startswith(("val_", "test_"))]
    assert held_out == ["val_loss", "val_acc", "test_loss", "test_acc"]
    assert not any(k.startswith("test_") for k in rows[False])
    assert (rows[True]["val_loss"], rows[True]["val_acc"]) == (
        rows[False]["val_loss"],
        rows[False]["val_acc"],
    )
    assert math.isfinite(rows[True]["test_loss"]) and 0.0 <= rows[True]["test_acc"] <= 1.0
