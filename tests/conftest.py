"""Shared fixtures: a mirror on a free 127.0.0.1 port and a client for it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import NoReturn

import matplotlib
import pytest

matplotlib.use("Agg")  # here, not MPLBACKEND: that would leak into nbval's kernels

from mirror_kit import MirrorClient, RunningMirror, start_mirror

#: 2026-01-01T00:00:00Z: a fixed instant so answers are reproducible.
T0 = 1_767_225_600_000
HOUR = 3_600_000
DAY = 24 * HOUR


def free_port() -> int:
    """A port nobody listens on on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def missing_tool(message: str) -> NoReturn:
    """A system tool the tests need is absent: a failure under CI=true, a skip elsewhere.

    CI installs every tool (.ci/run), so there a missing one is a broken set-up,
    never a reason to pass.
    """
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def mirror() -> Iterator[RunningMirror]:
    """A mirror serving the default synthetic catalog on a free loopback port."""
    with start_mirror(port=0) as running:
        yield running


@pytest.fixture
def client(mirror: RunningMirror) -> Iterator[MirrorClient]:
    with MirrorClient(mirror.url, api_key=mirror.api_key) as c:
        yield c
