"""The ``local_ray`` fixture: the Ray runtime of end-to-end tests, on this machine.

A test module uses it with ``pytest_plugins = ["tests.local_ray"]``.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def local_ray(request: pytest.FixtureRequest) -> None:
    """The session's Ray runtime, started on this machine (never another user's cluster)."""
    import ray

    if not ray.is_initialized() and not os.environ.get("RAY_ADDRESS"):
        os.environ["RAY_ADDRESS"] = "local"
    request.getfixturevalue("ray_session")
