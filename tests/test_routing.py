"""RoutingSource: connection details select one of the operator's stores, nothing else."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import HOUR, T0

from mirror_kit import MirrorClient, start_mirror
from mirror_kit.protocol import FieldNamesQuery, RemoteMirrorError
from mirror_kit.sources import CsvStore, PrometheusSource, SyntheticSource
from mirror_kit.sources.routing import MAX_DETAILS_DEPTH, RoutingSource, normal_url
from mirror_kit.sources.tabular import sample_csv_path

QUERY = FieldNamesQuery(T0, T0 + HOUR)
PROM_URL = "http://127.0.0.1:9"


def router(**extra: Any) -> RoutingSource:
    stores = {"synthetic": SyntheticSource(), "prom": PrometheusSource(PROM_URL), **extra}
    return RoutingSource(stores)


def test_no_selecting_key_is_the_default() -> None:
    routed = router()
    assert routed.select({}) is routed.default
    assert routed.select({"nonce": 7, "step": "10s"}) is routed.default
    assert routed.select({"source": "synthetic"}) is routed.default
    assert routed.names == ["synthetic", "prom"]


@pytest.mark.parametrize(
    "details",
    [
        {"source": "prom"},
        {"url": PROM_URL},
        {"url": "HTTP://127.0.0.1:9/"},  # normalised: scheme case, trailing slash
        {"source": "prom", "url": "http://127.0.0.1:9"},
        {"host": "127.0.0.1", "port": 9},  # StackState's own Prometheus mirror's form
        {"url": PROM_URL, "request_timeout_seconds": 5, "nan_interpretation": "ZERO"},  # peer
    ],
)
def test_a_store_is_selected_by_name_or_by_its_url(details: dict[str, Any]) -> None:
    routed = router()
    assert routed.select(details) is routed.stores["prom"]


@pytest.mark.parametrize(
    ("details", "summary"),
    [
        ({"source": "prometheus", "url": "http://127.0.0.1:1234/any/path?"}, "Unknown store"),
        ({"url": "http://127.0.0.1:1234/any/path?"}, "No store of this mirror"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "No store of this mirror"),
        ({"host": "prometheus.local.com", "port": 9900, "requestTimeout": 15000}, "No store"),
        ({"source": "prom", "url": "http://127.0.0.1:10"}, "an address that is not its"),
        ({"source": "synthetic", "url": PROM_URL}, "an address that is not its"),
        ({"url": "http://127.0.0.1:99999"}, "Invalid connection details"),
        ({"url": "ftp://127.0.0.1:9"}, "Invalid connection details"),
        ({"url": 7}, "Invalid connection details"),
        ({"port": 9090}, "Invalid connection details"),
        ({"host": "a/b"}, "Invalid connection details"),
        ({"source": 7}, "Unknown store"),
        ({"source": ["prom"]}, "Unknown store"),
        ({"file": "x.csv"}, 'name a "file"'),
    ],
)
def test_anything_else_is_refused_naming_the_stores(details: dict[str, Any], summary: str) -> None:
    with pytest.raises(RemoteMirrorError) as caught:
        router().select(details)
    assert summary in str(caught.value) and caught.value.http_status == 400
    if "Invalid" not in summary:
        assert "'synthetic' (synthetic), 'prom' (prometheus)" in caught.value.details
        assert PROM_URL not in str(caught.value)  # the operator's URLs are not shown


def test_nesting_is_bounded_without_recursion() -> None:
    nested: Any = {}
    for _ in range(100_000):
        nested = {"x": [nested]}
    with pytest.raises(RemoteMirrorError, match="nested more than"):
        router().select(nested)
    ok: Any = "leaf"
    for _ in range(MAX_DETAILS_DEPTH - 1):
        ok = {"x": ok}
    assert router().select(ok) is not None


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("http://Prom.Example:80/", "http://prom.example:80"),
        ("http://prom.example", "http://prom.example:80"),
        ("https://user:pw@prom.example/prefix/?q=1", "https://prom.example:443/prefix"),
        ("http://[::1]:9090", "http://[::1]:9090"),
    ],
)
def test_urls_compare_normalised(text: str, normal: str) -> None:
    assert normal_url(text) == normal


def test_two_stores_with_one_url_are_refused() -> None:
    with pytest.raises(ValueError, match="have one URL"):
        RoutingSource(
            {
                "synthetic": SyntheticSource(),
                "a": PrometheusSource(PROM_URL),
                "b": PrometheusSource(PROM_URL + "/"),
            }
        )
    with pytest.raises(ValueError, match="default store"):
        RoutingSource({"synthetic": SyntheticSource()}, default="prom")


async def test_requests_are_delegated_and_aclose_closes_every_store() -> None:
    closed: list[str] = []

    class Closable(SyntheticSource):
        async def aclose(self) -> None:
            closed.append("closed")

    routed = RoutingSource({"synthetic": SyntheticSource(), "c": Closable()})
    fields = await routed.field_names(QUERY, {"source": "c"})
    assert [f.field_name for f in fields][:2] == ["host", "metric"]
    await routed.aclose()
    assert closed == ["closed"]


def test_one_mirror_serves_two_stores(tmp_path: Any) -> None:
    served = tmp_path / "served"
    served.mkdir()
    for path in (served / "mine.csv", tmp_path / "outside.csv"):  # outside: a real file
        path.write_bytes(sample_csv_path().read_bytes())
    routed = RoutingSource({"synthetic": SyntheticSource(), "csv": CsvStore(directory=served)})

    def client_for(mirror: Any, details: dict[str, Any] | None) -> MirrorClient:
        return MirrorClient(mirror.url, mirror.api_key, connection_details=details)

    with start_mirror(routed, port=0) as mirror:
        with client_for(mirror, {"source": "csv", "file": "mine.csv"}) as client:
            names = [f.field_name for f in client.field_names(start=T0, end=T0 + HOUR).fields]
            series = client.metrics(start=T0, end=T0 + HOUR, host="b-host", metric="mem.used")
        with (
            client_for(mirror, {"source": "csv", "file": "../outside.csv"}) as escaping,
            pytest.raises(RemoteMirrorError, match="is not a file of store 'csv'") as caught,
        ):
            escaping.field_names()
        with client_for(mirror, None) as plain:
            synthetic = plain.metrics(start=T0, end=T0 + HOUR, host="b-host", metric="mem.used")
    assert str(tmp_path) not in str(caught.value)
    assert names == ["host", "region", "production", "metric"]
    # sample.csv: b-host's mem.used is 2176 + 4 per minute, 100 minutes from T0.
    np.testing.assert_array_equal(series.values, 2176.0 + 4 * np.arange(60))
    assert len(synthetic) == 360  # the synthetic catalog at 10 s resolution
