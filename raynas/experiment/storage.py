"""Where an experiment folder lives: a local path, a ``file://`` URI or a remote file system.

The runner creates the folder and writes its config here; the Tune setup and the run's
report find the local folder of a URI with :func:`_local_path` (None when it is remote).

Tune writes a run's files (trial logs, ``result.json``, its own state) in a staging folder
on the driver and copies the whole folder to the experiment folder every few seconds, each
file rewritten in place. A driver killed during a copy leaves any of those files cut short,
a trial that finished long ago included. :func:`atomic_uploads` makes each copy into a local
experiment folder write a temporary file and rename it over the old one, so a kill leaves
every file either as it was or as it is now (and skips files the folder already has).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from raynas.experiment.config import ConfigError, Experiment
from raynas.files import CONFIG_FILE


def _local_path(uri: str) -> Path | None:
    """The local folder of a path or ``file://`` URI; None for a remote file system."""
    if "://" not in uri:
        return Path(uri)
    if uri.startswith("file://"):
        return Path(uri[len("file://") :]).expanduser().resolve()
    return None


def _remote_fs(uri: str) -> tuple[Any, str]:
    """pyarrow's file system and path for a remote URI; ConfigError naming storage if not."""
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except Exception as err:  # pyarrow raises several types for bad or unsupported URIs
        raise ConfigError(
            [
                f"storage: {uri!r} is not a file system pyarrow can open ({err}); use a local "
                "path, file://, or a URI of an installed pyarrow file system (s3://, gs://, ...)"
            ]
        ) from None


def _exists_non_empty(uri: str) -> bool:
    local = _local_path(uri)
    if local is not None:
        return local.exists() and any(local.iterdir())
    from pyarrow import fs

    filesystem, path = _remote_fs(uri)
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.NotFound:
        return False
    return bool(filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True)))


def _write_config(exp: Experiment, uri: str, overwrite: bool) -> None:
    text = yaml.safe_dump(exp.to_dict(), sort_keys=False)
    local = _local_path(uri)
    if local is not None:
        if local.exists() and overwrite:
            shutil.rmtree(local)
        try:
            local.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                [
                    f"storage: cannot create the experiment folder {str(local)!r} "
                    f"({err.strerror or err}); use a writable folder (storage: or --storage)"
                ]
            ) from None
        (local / CONFIG_FILE).write_text(text)
        return
    filesystem, path = _remote_fs(uri)
    if overwrite:
        filesystem.delete_dir_contents(path, missing_dir_ok=True)
    filesystem.create_dir(path, recursive=True)
    with filesystem.open_output_stream(f"{path}/{CONFIG_FILE}") as f:
        f.write(text.encode())


log = logging.getLogger(__name__)
#: Prefix of the temporary file a copy writes beside its target (hidden; a kill may leave one).
PARTIAL_PREFIX = ".raynas-partial-"
_SETTLE_NS = 2_000_000_000


def _same_file(src: os.stat_result, dst: Path) -> bool:
    try:
        have = dst.stat()
    except FileNotFoundError:
        return False
    return have.st_size == src.st_size and have.st_mtime_ns == src.st_mtime_ns


def upload_atomically(local_path: str, fs_path: str, exclude: list[str] | None = None) -> int:
    """Copy the file or folder ``local_path`` to the local ``fs_path``, file by file, each
    written beside its target and renamed over it (so a reader, or a kill, never meets a cut
    file). A file whose size and modification time the target already has is skipped, as
    rsync's quick check does, unless it changed in the last two seconds. ``exclude``: patterns
    of relative paths left out (a folder that matches, whole), as Tune's.

    Returns:
        How many files were written.
    """
    src, dst = Path(local_path), Path(fs_path)
    patterns = exclude or []

    def excluded(rel: str) -> bool:
        return any(fnmatch.fnmatch(rel, pat) for pat in patterns)

    if src.is_file():
        pairs = [(src, dst)]
    else:
        pairs = []
        for folder, dirs, names in os.walk(src):
            base = Path(folder).relative_to(src)
            # a folder that matches (as ``rel`` or ``rel/``) is left out whole, as in Tune
            dirs[:] = [
                d
                for d in dirs
                if not excluded(f"{(base / d).as_posix()}/") and not excluded((base / d).as_posix())
            ]
            for name in names:
                rel = (base / name).as_posix()
                if not excluded(rel):
                    pairs.append((src / rel, dst / rel))
    # A file changed in the last seconds is copied even when its size and time match the
    # target's: the clock's grain is coarser than two quick rewrites of the same length.
    settled = time.time_ns() - _SETTLE_NS
    written = 0
    for source, target in pairs:
        try:
            info = source.stat()
        except FileNotFoundError:  # removed by Tune since the walk (an old checkpoint)
            continue
        if info.st_mtime_ns < settled and _same_file(info, target):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{PARTIAL_PREFIX}{uuid.uuid4().hex[:8]}-{target.name}")
        try:
            shutil.copy2(source, partial)
            os.replace(partial, target)
        except FileNotFoundError:  # the source went away mid-copy: nothing to keep
            partial.unlink(missing_ok=True)
            continue
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        written += 1
    return written


def atomic_uploads() -> bool:
    """Make Tune's copies into a local experiment folder atomic, file by file (see module).

    Tune's copy is ``_FilesystemSyncer._sync_up_command`` (ray 2.60, which raynas pins); for a
    local destination it now returns :func:`upload_atomically`, for a remote one (an object
    store, where each upload replaces the object whole) Tune's own copy. Idempotent; returns
    whether the copy is atomic (False, with a warning, if this Ray has no such syncer).
    """
    try:
        from pyarrow import fs as pafs
        from ray.train._internal.storage import _FilesystemSyncer
    except ImportError:  # another Ray: its copies stay as they are
        log.warning("raynas: this Ray's syncer is unknown; its copies are not made atomic")
        return False
    original = _FilesystemSyncer._sync_up_command
    if getattr(original, "_raynas_atomic", False):
        return True

    def sync_up_command(
        self: Any, local_path: str, uri: str, exclude: list[str] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if isinstance(self.storage_filesystem, pafs.LocalFileSystem):
            return upload_atomically, {"local_path": local_path, "fs_path": uri, "exclude": exclude}
        return original(self, local_path, uri, exclude)

    sync_up_command._raynas_atomic = True  # type: ignore[attr-defined]
    _FilesystemSyncer._sync_up_command = sync_up_command  # type: ignore[method-assign]
    return True


def drop_partials(folder: str | Path) -> int:
    """Remove the temporary files a killed copy left under ``folder`` (see :data:`PARTIAL_PREFIX`).

    Runs before a run or resume starts copying, so none is ever a live copy's. Returns how many.
    """
    removed = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            if name.startswith(PARTIAL_PREFIX):
                Path(parent, name).unlink(missing_ok=True)
                removed += 1
    return removed
