"""One driver per experiment folder: ``raynas run --overwrite`` or a second ``raynas resume``
on an experiment another driver is still running is refused instead of merging both.

The driver writes ``raynas_driver.json`` (pid, host, start time) into the folder while it runs
and removes it at the end. A lock left by a driver that was killed is stale: on the same host
its pid no longer runs, and the next command takes the folder over. A lock from another host
cannot be checked from here; the message says how to release it.

A driver SIGKILLed while it ran an embedded Ray leaves some of that Ray behind (the dashboard
and its agents ignore SIGTERM and outlive their raylet). The lock records the driver's process
group when the driver leads it (a command started from a shell does), and the command that
takes over a stale lock kills the Ray processes still in that group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from raynas.experiment.config import ConfigError
from raynas.files import LOCK_FILE

__all__ = [
    "check_free",
    "group_members",
    "holding",
    "keeping_locks",
    "reap_ray_group",
]

#: Inside :func:`keeping_locks`: a lock outlives its ``holding`` block, released on leaving.
_keep = False
_kept: list[tuple[Path, int]] = []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def check_free(folder: Path) -> None:
    """Raise :class:`ConfigError` when another live driver holds ``folder``.

    This process itself (a finished in-process run) and dead drivers do not hold it.
    """
    try:
        lock = json.loads((folder / LOCK_FILE).read_text())
        pid, host = int(lock["pid"]), str(lock["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return  # no lock, or a half-written one from a killed driver
    here = socket.gethostname()
    if host == here and (pid == os.getpid() or not _alive(pid)):
        if pid != os.getpid() and isinstance(lock.get("ray_group"), int):
            reap_ray_group(int(lock["ray_group"]))
        return
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(lock.get("started", 0))))
    fix = (
        "wait for it to end or stop it"
        if host == here
        else f"if that driver is gone, delete {str(folder / LOCK_FILE)!r}"
    )
    raise ConfigError(
        [
            f"name: experiment folder {str(folder)!r} is being run by pid {pid} on host "
            f"{host!r} (since {since}); {fix}, or pick another --name"
        ]
    )


def group_members(pgid: int) -> dict[int, bytes]:
    """``pid -> command line`` of the live (not zombie) processes of process group ``pgid``."""
    members: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(stat[2]) == pgid and stat[0] != "Z":
            members[int(entry.name)] = cmd
    return members


def reap_ray_group(pgid: int, *, settle_s: float = 5.0) -> int:
    """SIGKILL the Ray processes left in process group ``pgid`` by a dead driver; how many.

    Only processes whose command line names Ray are touched (never a process that merely
    reuses the group id). The group is scanned again until a scan finds none left (at most
    ``settle_s`` seconds): a raylet that is still alive while the first scan runs can start a
    worker after the scan read the process table, and that worker must not outlive it.
    """
    if _alive(pgid):
        return 0  # the leader runs: not a dead driver's group
    killed: set[int] = set()
    deadline = time.monotonic() + settle_s
    while True:
        left = [pid for pid, cmd in group_members(pgid).items() if b"ray" in cmd]
        if not left or time.monotonic() > deadline:
            return len(killed)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)  # SIGKILLed processes leave the table (or turn zombie) promptly


@contextmanager
def holding(folder: Path | None) -> Iterator[None]:
    """Hold ``folder`` (a local experiment folder; None: nothing to hold) while the block runs."""
    if folder is None:
        yield
        return
    check_free(folder)
    path = folder / LOCK_FILE
    mine: dict[str, object] = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
    }
    if os.getpgid(0) == os.getpid():  # this driver leads its process group (its Ray's too)
        mine["ray_group"] = os.getpid()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(mine))
    os.replace(tmp, path)
    try:
        yield
    finally:
        if _keep:
            _kept.append((path, os.getpid()))
        else:
            _release(path, os.getpid())


def _release(path: Path, pid: int) -> None:
    """Remove the lock at ``path`` if ``pid`` still holds it."""
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


@contextmanager
def keeping_locks(before_release: Callable[[], None]) -> Iterator[None]:
    """Keep the locks taken inside the block until it ends, then call ``before_release``
    and release them (the CLI's way: ``before_release`` shuts the command's Ray down).

    A command's Ray stops after its run returns; a driver killed while that Ray stops must
    still leave the lock that names its process group, or the Ray processes it started (the
    dashboard's agents outlive their raylet) are never reaped.
    """
    global _keep
    _keep = True
    try:
        yield
    finally:
        _keep = False
        try:
            before_release()
        finally:
            while _kept:
                _release(*_kept.pop())
