"""Tune's copies into a local experiment folder are atomic, file by file (raynas.experiment.storage)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from raynas.experiment import storage
from raynas.experiment.storage import (
    PARTIAL_PREFIX,
    atomic_uploads,
    drop_partials,
    upload_atomically,
)
from tests.conftest import small_experiment


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _age(path: Path, seconds: float = 60) -> None:
    """Make ``path`` look settled (changed ``seconds`` ago), as an old trial's file is."""
    old = path.stat().st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(old, old))


def test_a_folder_is_copied_whole_leaving_out_what_exclude_names(tmp_path: Path) -> None:
    src, dst = tmp_path / "staging", tmp_path / "exp"
    _tree(
        src,
        {
            "experiment_state-1.json": "{}",
            "trial_a/result.json": '{"a": 1}\n',
            "trial_a/checkpoint_000000/model.pt": "w",
            "trial_a/big.png": "img",
            "skip/x.txt": "x",
        },
    )
    assert upload_atomically(str(src), str(dst), exclude=["*.png", "skip/"]) == 3
    got = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert got == [
        "experiment_state-1.json",
        "trial_a/checkpoint_000000/model.pt",
        "trial_a/result.json",
    ]
    assert (dst / "trial_a" / "result.json").read_text() == '{"a": 1}\n'
    single = tmp_path / "one" / "copy.json"
    assert upload_atomically(str(src / "experiment_state-1.json"), str(single)) == 1
    assert single.read_text() == "{}"


def test_a_settled_unchanged_file_is_skipped_and_a_changed_one_replaced(tmp_path: Path) -> None:
    src, dst = tmp_path / "staging", tmp_path / "exp"
    _tree(src, {"old/result.json": "1\n", "live/result.json": "1\n"})
    for rel in ("old/result.json", "live/result.json"):
        _age(src / rel)
    assert upload_atomically(str(src), str(dst)) == 2
    inode = (dst / "old" / "result.json").stat().st_ino
    (src / "live" / "result.json").write_text("1\n2\n")
    assert upload_atomically(str(src), str(dst)) == 1  # the old trial's file is left alone
    assert (dst / "old" / "result.json").stat().st_ino == inode
    assert (dst / "live" / "result.json").read_text() == "1\n2\n"
    # The same length rewritten within the clock's grain is still copied while it is fresh.
    (src / "live" / "result.json").write_text("3\n4\n")
    assert upload_atomically(str(src), str(dst)) == 1
    assert (dst / "live" / "result.json").read_text() == "3\n4\n"


def test_a_copy_killed_midway_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kill that cut a finished trial's ``result.json`` in CI: the copy now dies on its
    temporary file, and the target keeps every line it had."""
    src, dst = tmp_path / "staging", tmp_path / "exp"
    _tree(src, {"trial_a/result.json": "row1\nrow2\n"})
    upload_atomically(str(src), str(dst))
    (src / "trial_a" / "result.json").write_text("row1\nrow2\nrow3\n")

    def dies_halfway(source: Any, target: Any, **kw: Any) -> None:
        data = Path(source).read_bytes()
        Path(target).write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt  # stands for the SIGKILL: the copy stops mid-file

    monkeypatch.setattr(shutil, "copy2", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        upload_atomically(str(src), str(dst))
    assert (dst / "trial_a" / "result.json").read_text() == "row1\nrow2\n"
    assert not list(dst.rglob(f"{PARTIAL_PREFIX}*"))


def test_leftovers_of_a_killed_copy_are_dropped(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            f"trial_a/{PARTIAL_PREFIX}1234abcd-result.json": "row",
            "trial_a/result.json": "row\n",
            f"{PARTIAL_PREFIX}99-experiment_state-1.json": "{",
        },
    )
    assert drop_partials(tmp_path) == 2
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["result.json"]


def test_tunes_syncer_copies_a_local_folder_atomically_and_a_remote_one_its_own_way() -> None:
    from pyarrow import fs as pafs
    from ray.train._internal.storage import _FilesystemSyncer, _upload_to_fs_path

    assert atomic_uploads() and atomic_uploads()  # idempotent
    local = _FilesystemSyncer(storage_filesystem=pafs.LocalFileSystem())
    fn, kwargs = local._sync_up_command(local_path="/a", uri="/b", exclude=["*.png"])
    assert fn is upload_atomically
    assert kwargs == {"local_path": "/a", "fs_path": "/b", "exclude": ["*.png"]}
    remote = _FilesystemSyncer(
        storage_filesystem=pafs.SubTreeFileSystem("/", pafs.LocalFileSystem())
    )
    fn, _ = remote._sync_up_command(local_path="/a", uri="/b")
    assert fn is _upload_to_fs_path


def test_a_real_run_uploads_through_the_atomic_copy(
    tmp_path: Path, ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's every upload to its folder goes through :func:`upload_atomically` (counted by
    a wrapper around the real copy), and it leaves no temporary file behind."""
    import raynas

    calls: list[str] = []
    real = storage.upload_atomically

    def counted(local_path: str, fs_path: str, exclude: list[str] | None = None) -> int:
        calls.append(fs_path)
        return real(local_path, fs_path, exclude)

    monkeypatch.setattr(storage, "upload_atomically", counted)
    result = raynas.run(small_experiment(tmp_path), name="atomic", verbose=False)
    folder = tmp_path / "runs" / "atomic"
    assert len(result.trials) == 2
    assert any(Path(c) == folder for c in calls), calls
    assert len(list(folder.glob("*/result.json"))) == 2
    assert not list(folder.rglob(f"{PARTIAL_PREFIX}*"))
