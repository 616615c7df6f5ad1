"""Starting Ray, or joining a cluster, for a raynas driver.

:func:`init_ray` sets the environment raynas needs from Ray and Tune (``_ENV``, also handed to
the workers), and refuses an unreachable cluster quickly (:func:`_probe`) instead of letting
``ray.init`` retry for minutes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from raynas.experiment.config import ConfigError

_ENV = {
    # A constraint-violated child reports no objective; Tune must not fail it for that.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "RAY_DEDUP_LOGS": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_TRAIN_V2_ENABLED": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Snapshot the experiment at every step of Tune's loop (not every >= 10 s): a trial then
    # appears in a snapshot before it can finish, and the journal (raynas.experiment.journal) covers
    # the rest, so a resume after a kill trains nothing twice.
    "TUNE_GLOBAL_CHECKPOINT_S": "0",
}


def init_ray(address: str | None, plugin_path: Sequence[str] = ()) -> None:
    """Start an embedded Ray, or join the cluster at ``address`` (refused when unreachable).

    ``plugin_path`` (the experiment's ``plugin_path``) goes first on the workers'
    ``PYTHONPATH``, so a plugin trainable's class can be unpickled there. A Ray that is
    already running keeps its workers' environment: start it with that path yourself.
    """
    import ray

    for k, v in _ENV.items():
        os.environ.setdefault(k, v)
    if ray.is_initialized():
        return
    env = {"RAY_LOG_LEVEL": "WARNING", **_ENV}
    if plugin_path:
        env["PYTHONPATH"] = os.pathsep.join(
            [*plugin_path, *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": True,
        # Workers inherit these: quiet Ray/Tune INFO chatter (checkpoint notices).
        "runtime_env": {"env_vars": env},
    }
    # No address: the cluster of a `ray job submit` (RAY_ADDRESS), else a fresh embedded
    # Ray, never a cluster that happens to be running on this machine (which a bare
    # ray.init() would attach to).
    kwargs["address"] = address or os.environ.get("RAY_ADDRESS") or "local"
    if address:
        _probe(address)
    # Ray's notice that token authentication is on, printed on every start; it stays on
    # (the embedded Ray listens on this machine only), the notice goes.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    # Tune's result grid (unused: raynas reads the folder) warns about a trial the budget
    # stopped before it wrote a result.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    try:
        ray.init(**kwargs)
    except ConnectionError as err:
        raise ConfigError(
            [
                f"--address: no Ray cluster at {address or kwargs['address']!r} ({err}); start "
                "one with `ray start --head`, or leave --address out for an embedded Ray"
            ]
        ) from None


#: Seconds to wait for a cluster's head to accept a connection before giving up.
CONNECT_TIMEOUT_S = 5.0


def _probe(address: str) -> None:
    """Refuse an address whose head does not answer within :data:`CONNECT_TIMEOUT_S`.

    ``ray.init`` retries an unreachable head for minutes; a ``host:port`` address (also
    ``ray://host:port``) is tried once with a bounded TCP connect first. ``auto`` and ``local``
    are Ray's own words and left to it.
    """
    import socket

    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or address in ("auto", "local"):
        return
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise ConfigError(
            [
                f"--address: cannot reach a Ray head at {address!r} within "
                f"{CONNECT_TIMEOUT_S:g} s ({err.strerror or err}); check the address and that "
                "`ray start --head` runs there"
            ]
        ) from None
