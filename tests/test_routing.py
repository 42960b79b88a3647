"""RoutingSource: the store is picked per request from the connection details."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import HOUR, T0

from mirror_kit import MirrorClient, start_mirror
from mirror_kit.protocol import FieldNamesQuery, RemoteMirrorError
from mirror_kit.sources import SyntheticSource, TelemetrySource
from mirror_kit.sources.routing import RoutingSource
from mirror_kit.sources.tabular import csv_factory, sample_csv_path

QUERY = FieldNamesQuery(T0, T0 + HOUR)


class Recorder:
    """A factory that counts its calls and builds a fresh synthetic source each time."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, details: Any) -> TelemetrySource:
        self.calls.append(dict(details))
        return SyntheticSource()


def test_no_source_key_or_the_default_name_is_the_default() -> None:
    default = SyntheticSource()
    router = RoutingSource(default, {"other": Recorder()})
    assert router.source_for({}) is default
    assert router.source_for({"source": "synthetic", "x": 1}) is default
    assert router.names == ["synthetic", "other"]


def test_built_sources_are_cached_by_canonical_details() -> None:
    recorder = Recorder()
    router = RoutingSource(SyntheticSource(), {"rec": recorder})
    first = router.source_for({"source": "rec", "url": "u", "opts": {"a": 1, "b": 2}})
    again = router.source_for({"opts": {"b": 2, "a": 1}, "url": "u", "source": "rec"})
    other = router.source_for({"source": "rec", "url": "v"})
    assert first is again and other is not first
    assert len(recorder.calls) == 2


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    recorder = Recorder()
    router = RoutingSource(SyntheticSource(), {"rec": recorder}, cache_size=2)
    a = router.source_for({"source": "rec", "n": 1})
    b = router.source_for({"source": "rec", "n": 2})
    assert router.source_for({"source": "rec", "n": 1}) is a  # a is now the most recent
    router.source_for({"source": "rec", "n": 3})  # evicts b
    assert router.cached[0] is a and b not in router.cached and len(router.cached) == 2
    assert router.source_for({"source": "rec", "n": 2}) is not b
    assert len(recorder.calls) == 4


@pytest.mark.parametrize("name", ["nope", 7, ["prometheus"]])
def test_an_unknown_source_names_the_known_ones(name: Any) -> None:
    router = RoutingSource(SyntheticSource(), {"prometheus": Recorder(), "csv": Recorder()})
    with pytest.raises(RemoteMirrorError, match="Unknown source") as caught:
        router.source_for({"source": name})
    assert "'synthetic', 'csv', 'prometheus'" in caught.value.details


def test_a_failing_factory_is_reported_against_its_source() -> None:
    def broken(details: Any) -> TelemetrySource:
        raise ValueError("no such file")

    router = RoutingSource(SyntheticSource(), {"broken": broken})
    with pytest.raises(RemoteMirrorError, match="source 'broken'") as caught:
        router.source_for({"source": "broken"})
    assert caught.value.details == "no such file"
    assert router.cached == []  # a failure is not cached


async def test_requests_are_delegated_and_aclose_closes_built_sources() -> None:
    closed: list[str] = []

    class Closable(SyntheticSource):
        async def aclose(self) -> None:
            closed.append("built")

    router = RoutingSource(SyntheticSource(), {"c": lambda details: Closable()})
    fields = await router.field_names(QUERY, {"source": "c"})
    assert [f.field_name for f in fields][:2] == ["host", "metric"]
    await router.aclose()
    assert closed == ["built"] and router.cached == []


def test_one_mirror_serves_two_stores(tmp_path: Any) -> None:
    served = tmp_path / "served"
    served.mkdir()
    for path in (served / "mine.csv", tmp_path / "outside.csv"):  # outside: a real file
        path.write_bytes(sample_csv_path().read_bytes())
    router = RoutingSource(SyntheticSource(), {"csv": csv_factory(served)})

    def client_for(mirror: Any, details: dict[str, Any] | None) -> MirrorClient:
        return MirrorClient(mirror.url, mirror.api_key, connection_details=details)

    with start_mirror(router, port=0) as mirror:
        with client_for(mirror, {"source": "csv", "file": "mine.csv"}) as client:
            names = [f.field_name for f in client.field_names(start=T0, end=T0 + HOUR).fields]
            series = client.metrics(start=T0, end=T0 + HOUR, host="b-host", metric="mem.used")
        with (
            client_for(mirror, {"source": "csv", "file": "../outside.csv"}) as escaping,
            pytest.raises(RemoteMirrorError, match="not a file of the mirror's data"),
        ):
            escaping.field_names()
        with client_for(mirror, None) as plain:
            synthetic = plain.metrics(start=T0, end=T0 + HOUR, host="b-host", metric="mem.used")
    assert names == ["host", "region", "production", "metric"]
    # sample.csv: b-host's mem.used is 2176 + 4 per minute, 100 minutes from T0.
    np.testing.assert_array_equal(series.values, 2176.0 + 4 * np.arange(60))
    assert len(synthetic) == 360  # the synthetic catalog at 10 s resolution
