"""Shared fixtures: a mirror on a free 127.0.0.1 port and a client for it."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib
import pytest

matplotlib.use("Agg")  # here, not MPLBACKEND: that would leak into nbval's kernels

from mirror_kit import MirrorClient, RunningMirror, start_mirror

#: 2026-01-01T00:00:00Z: a fixed instant so answers are reproducible.
T0 = 1_767_225_600_000
HOUR = 3_600_000
DAY = 24 * HOUR


@pytest.fixture
def mirror() -> Iterator[RunningMirror]:
    """A mirror serving the default synthetic catalog on a free loopback port."""
    with start_mirror(port=0) as running:
        yield running


@pytest.fixture
def client(mirror: RunningMirror) -> Iterator[MirrorClient]:
    with MirrorClient(mirror.url, api_key=mirror.api_key) as c:
        yield c
