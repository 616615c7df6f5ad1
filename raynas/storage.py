"""Where an experiment folder lives: a local path, a ``file://`` URI or a remote file system.

The runner creates the folder and writes its config here; the Tune setup and the run's
report find the local folder of a URI with :func:`_local_path` (None when it is remote).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from raynas.config import ConfigError, Experiment
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
