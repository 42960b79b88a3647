"""What a notebook's mirror serves, read over HTTP from the test process, as StackState would.

The browser tests drive widgets with the mouse and keyboard; whether a change reached
the mirror (and only the series the learner meant) is decided here, by asking the
mirror the notebook started, and by comparing with a reference mirror in the test
process that was given the same shapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from conftest import HOUR, T0

from mirror_kit import MirrorClient, start_mirror
from mirror_kit.sources import SyntheticSource

#: The window every snapshot asks for: six hours of each series, raw.
WINDOW = {"start": T0, "end": T0 + 6 * HOUR}
Series = tuple[str, str]


def series_keys() -> list[Series]:
    """(host, metric) of every series of the default synthetic catalog."""
    return [
        (str(s.labels["host"]), str(s.labels["metric"])) for s in SyntheticSource().catalog.series
    ]


def snapshot(url: str, api_key: str = "api_key") -> dict[Series, np.ndarray]:
    """Every series' raw values over WINDOW, as the mirror at ``url`` answers them."""
    with MirrorClient(url, api_key=api_key) as client:
        return {
            (host, metric): client.metrics(host=host, metric=metric, **WINDOW).values
            for host, metric in series_keys()
        }


def changed(before: Mapping[Series, np.ndarray], after: Mapping[Series, np.ndarray]) -> set:
    """The series whose answer differs between two snapshots."""
    return {
        key
        for key in before
        if before[key].shape != after[key].shape or not np.array_equal(before[key], after[key])
    }


def default_shape(host: str, metric: str) -> Any:
    """The shape a fresh mirror gives a series (the notebook's starting point)."""
    return SyntheticSource().shape({"host": host, "metric": metric})


@contextmanager
def reference(**shapes: Mapping[str, Any]) -> Iterator[MirrorClient]:
    """A mirror in this process with some series reshaped: ``{"b-host/cpu.user": {...}}``."""
    with start_mirror(port=0) as mirror:
        source = mirror.source
        assert isinstance(source, SyntheticSource)
        for key, changes in shapes.items():
            host, metric = key.split("/")
            source.set_shape({"host": host, "metric": metric}, **changes)
        with MirrorClient(mirror.url, api_key=mirror.api_key) as client:
            yield client


def reference_values(host: str, metric: str, **changes: Any) -> np.ndarray:
    """What a series answers over WINDOW once ``changes`` are applied to its default shape."""
    with reference(**{f"{host}/{metric}": changes}) as client:
        return client.metrics(host=host, metric=metric, **WINDOW).values


def mirror_url(text: str) -> str:
    """The mirror's URL from a panel's text (the Stop button says where it serves)."""
    found = re.search(r"serves on (http://127\.0\.0\.1:\d+)", text)
    assert found, f"no 'serves on http://127.0.0.1:PORT' in {text[:300]!r}"
    return found.group(1)
