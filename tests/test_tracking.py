"""Experiment trackers from the config (``callbacks:``), read back from what they wrote: the
MLflow store, W&B's offline run, TensorBoard's event files."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from raynas.experiment.config import ConfigError
from raynas.experiment.config_load import load_config
from tests.conftest import small_experiment


def _event_tags(path: Path) -> set[str]:
    """The scalar tags of one TensorBoard event file, parsed as TFRecords."""
    from tensorboardX.proto import event_pb2

    tags, data = set(), path.read_bytes()
    at = 0
    while at + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[at : at + 8])
        record = data[at + 12 : at + 12 + length]
        at += 12 + length + 4  # length, its crc, the record, its crc
        event = event_pb2.Event.FromString(record)
        tags.update(v.tag for v in event.summary.value)
    return tags


def _wandb_records(path: Path) -> list[Any]:
    """The records of a W&B offline run file (``run-*.wandb``): a 7-byte header (``:W&B``,
    magic, version), then LevelDB-log blocks of 32 KiB whose chunks (crc, length, type:
    1 full, 2 first, 3 middle, 4 last) carry serialised ``Record`` protos."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    out, at, whole = [], 7, b""
    while at + 7 <= len(data):
        if 32768 - at % 32768 < 7:  # a block's tail too short for a chunk header is padding
            at += 32768 - at % 32768
            continue
        _crc, length, kind = struct.unpack("<IHB", data[at : at + 7])
        chunk, at = data[at + 7 : at + 7 + length], at + 7 + length
        if kind == 0:
            continue
        whole = chunk if kind in (1, 2) else whole + chunk
        if kind in (1, 4):
            out.append(pb.Record.FromString(whole))
    return out


@pytest.mark.slow
def test_mlflow_wandb_and_tensorboard_receive_every_trial(
    ray_session: None, tmp_path: Path
) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    from mlflow.tracking import MlflowClient

    import raynas

    cfg = small_experiment(
        tmp_path,
        train={"epochs": 2},
        callbacks=["tensorboard", "mlflow", {"name": "wandb", "mode": "offline"}],
    )
    result = raynas.run(load_config(cfg))
    folder = result.path
    assert len(result.trials) == 2

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("t")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert params["arch_str"].startswith("|") and params["space"] == "nb201"
        assert int(float(params["params"])) > 0 and float(params["flops"]) > 0
        history = client.get_metric_history(run.info.run_id, "val_acc")
        assert len(history) == 2  # one point per epoch

    offline = sorted((folder / "wandb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 2
    for path in offline:
        records = _wandb_records(path)
        kinds = [r.WhichOneof("record_type") for r in records]
        assert "exit" in kinds, kinds  # the run was closed
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        config = {u.key: json.loads(u.value_json) for u in run.config.update}
        assert config["arch_str"].startswith("|") and "cell" in config["arch"]
        logged = [
            {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
            for r in records
            if r.WhichOneof("record_type") == "history"
        ]
        assert sum("val_acc" in row for row in logged) == 2  # one point per epoch
        assert any(row.get("cost/params", 0) > 0 for row in logged)

    events = sorted(folder.glob("trial*/events.out.tfevents.*"))
    assert len(events) == 2
    for path in events:
        assert any(tag.endswith("val_acc") for tag in _event_tags(path)), path


def test_tracker_options_belong_to_their_tracker(tmp_path: Path) -> None:
    cfg = small_experiment(tmp_path, callbacks=[{"name": "wandb", "tracking_uri": "sqlite://"}])
    with pytest.raises(ConfigError, match=r"callbacks\.0\.tracking_uri: is an mlflow option"):
        load_config(cfg)
    with pytest.raises(ConfigError, match=r"callbacks\.0\.name: .*'mlflow' or 'wandb'"):
        load_config(small_experiment(tmp_path, callbacks=["neptune"]))
    exp = load_config(small_experiment(tmp_path, callbacks=["csv", "mlflow"]))
    assert [c.name for c in exp.callbacks] == ["csv", "mlflow"]


def test_a_missing_tracker_package_is_a_config_error(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    from raynas.experiment.tracking import check_tracking

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    exp = load_config(small_experiment(tmp_path, callbacks=["tensorboard", "wandb"]))
    assert check_tracking(exp) == [
        "callbacks[1]: 'wandb' needs the 'wandb' package; install the 'wandb' extra "
        "(pip install -e '.[wandb]') or remove it from callbacks"
    ]


def test_the_cli_refuses_a_bad_tracker_with_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    path = tmp_path / "bad.yaml"
    bad = small_experiment(tmp_path, callbacks=[{"name": "mlflow", "project": "p"}])
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run(
        [sys.executable, "-m", "raynas.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "callbacks.0.project: is a wandb option" in proc.stderr
    assert "Traceback" not in proc.stderr
