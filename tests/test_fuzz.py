"""Fuzzing a running mirror over HTTP: whatever arrives, the answer is a protocol body.

Properties, for every request (valid, mutated, malformed JSON text, binary, huge,
deeply nested, wrong method or path):

* an answer arrives on the connection (no connection dropped);
* it carries ``X-MIRROR-API-KEY`` with the mirror's key;
* its body is strict JSON matching the OpenAPI schema of its path and status
  (an error body for every non-2xx), and no status is 5xx (the synthetic source
  has no store to fail, so a 5xx could only be a bug in the mirror).

Bounded for CI: ``MIRROR_KIT_FUZZ_EXAMPLES`` examples per test (default 60; raise
it for a long local run: 2000 gives > 10,000 requests). The module prints its
counts when it ends: requests, statuses, dropped connections, protocol violations.

Schemathesis also fuzzes from the served document (positive and negative cases).
Its lazy ``from_fixture`` loader fails on pytest 9 (it reads a private pytest
attribute), so the schema is loaded eagerly from ``build_document()`` and the
base URL is given per call.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from conftest import DAY, HOUR, T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_check import DOCUMENT, answer_errors
from schemathesis.specs.openapi.checks import positive_data_acceptance

from mirror_kit import Limits, RunningMirror, ServerSettings, start_mirror
from mirror_kit.protocol import ROUTES, AggregationMethod
from mirror_kit.server import API_KEY_HEADER

EXAMPLES = int(os.environ.get("MIRROR_KIT_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Bodies near the body cap cost more per request: fewer of them.
FUZZ_LARGE = settings(FUZZ, max_examples=max(5, EXAMPLES // 10))
MAX_BODY = ServerSettings().max_body_bytes

#: What the whole module sent and saw; printed at the end of the run.
STATS: Counter[str] = Counter({"dropped connections": 0, "protocol violations": 0})
Json = dict[str, Any]


@dataclass
class Target:
    mirror: RunningMirror
    http: httpx.Client


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """One mirror for the module; small caps keep every answer small and fast."""
    limits = Limits(max_points=20_000, max_answer_points=2_000)
    with (
        start_mirror(port=0, settings=ServerSettings(limits=limits)) as mirror,
        httpx.Client(base_url=mirror.url, timeout=30.0) as http,
    ):
        yield Target(mirror, http)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nfuzz totals: {dict(sorted(STATS.items()))}")


# --- sending and checking ----------------------------------------------------------


def _strict_json(raw: bytes) -> Any:
    def reject(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(raw, parse_constant=reject)


def exchange(
    target: Target,
    method: str,
    path: str,
    content: bytes = b"",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Send one request and check the properties of its answer; returns the answer."""
    STATS["requests"] += 1
    try:
        answer = target.http.request(
            method, quote(path, safe="/%"), content=content, headers=headers
        )
    except httpx.TransportError as error:
        STATS["dropped connections"] += 1
        raise AssertionError(f"{method} {path}: no answer ({error!r})") from error
    STATS[f"status {answer.status_code}"] += 1
    problems = _problems(target, method, path, answer)
    if problems:
        STATS["protocol violations"] += 1
        raise AssertionError(f"{method} {path} -> {answer.status_code}: {problems}")
    return answer


def _problems(target: Target, method: str, path: str, answer: httpx.Response) -> list[str]:
    problems = []
    if answer.headers.get(API_KEY_HEADER) != target.mirror.api_key:
        problems.append(f"{API_KEY_HEADER} missing or wrong")
    if answer.status_code >= 500:
        problems.append("a 5xx from a mirror whose source cannot fail")
    if method == "HEAD":
        return problems + ([] if not answer.content else ["a body on HEAD"])
    if not answer.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"content type {answer.headers.get('content-type')!r}")
    try:
        body = _strict_json(answer.content)
    except ValueError as error:
        return [*problems, f"not strict JSON: {error}"]
    return problems + answer_errors(DOCUMENT, path, method, answer.status_code, body)


def post_json(target: Target, path: str, body: Any, **dumps: Any) -> httpx.Response:
    return exchange(target, "POST", path, json.dumps(body, **dumps).encode())


# --- strategies: valid requests ----------------------------------------------------

KNOWN: dict[str, list[Any]] = {
    "host": ["a-host", "b-host", "c-host"],
    "metric": ["cpu.user", "cpu.system", "mem.used", "net.bytes_in"],
    "region": ["eu-west", "us-east"],
    "interface": ["eth0"],
    "cores": [2.0, 4.0, 8.0],
    "production": [True, False],
}
#: Lone surrogates are legal in JSON text (escaped) and become Python str.
surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3)
names = st.one_of(st.sampled_from(sorted(KNOWN)), st.text(max_size=12), surrogates)
type_of = {str: "StringValue", float: "DoubleValue", bool: "BooleanValue", list: "InSetValue"}


@st.composite
def condition(draw: st.DrawFn) -> Json:
    key = draw(names)
    candidates = KNOWN.get(key, [])
    value = draw(
        st.one_of(
            st.sampled_from(candidates) if candidates else st.text(max_size=10),
            st.text(max_size=10),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
            st.lists(st.sampled_from(KNOWN["host"]) | st.text(max_size=6), max_size=4),
        )
    )
    typed: Json = {"value": value}
    if draw(st.booleans()):
        typed["_type"] = type_of[type(value)]
    out: Json = {"key": key, "value": typed}
    if draw(st.booleans()):
        out["_type"] = "EqualityCondition"
    return out


@st.composite
def query(draw: st.DrawFn, kind: str) -> Json:
    start = T0 + draw(st.integers(-10 * DAY, 10 * DAY))
    body: Json = {
        "conditions": draw(st.lists(condition(), max_size=4)),
        "startTime": start,
        "endTime": start + draw(st.integers(-HOUR, 3 * DAY)),
    }
    limit = draw(st.none() | st.integers(0, 50) | st.just(2_147_483_647) | st.integers(0, 2**53))
    if limit is not None:
        body["limit"] = limit
    if draw(st.booleans()):
        body["latestFirst"] = draw(st.booleans())
    if kind == "FieldValuesQuery":
        body["field"] = {
            "fieldName": draw(names),
            "fieldType": draw(st.sampled_from(["STRING", "NUMBER", "BOOLEAN", "DOUBLE"])),
        }
        body["offset"] = draw(st.integers(0, 20))
        if draw(st.booleans()):
            body["fieldValuePrefix"] = draw(
                st.sampled_from(["cpu", "a-", ""]) | st.text(max_size=4)
            )
    if kind == "MetricsQuery" and draw(st.booleans()):
        body["aggregation"] = {
            "method": draw(st.sampled_from([m.value for m in AggregationMethod])),
            "bucketSizeMillis": draw(st.integers(1, DAY) | st.sampled_from([60_000, HOUR])),
        }
    if draw(st.booleans()):
        body["_type"] = kind
    return body


@st.composite
def valid_request(draw: st.DrawFn) -> tuple[str, Json]:
    path = draw(st.sampled_from(sorted(ROUTES)))
    request_type = ROUTES[path]
    body: Json = {
        "connectionDetails": draw(
            st.just({}) | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)
        )
    }
    if path != "/api/connection":
        body["query"] = draw(query(request_type.query_type.type_name))
    if draw(st.booleans()):
        body["_type"] = request_type.type_name
    if draw(st.booleans()):
        body[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return path, body


# --- strategies: invalid requests --------------------------------------------------

huge = st.sampled_from(
    [2**53 + 1, 2**63, -(2**63) - 1, 10**100, -(10**30), 1e308, -1e308, 5e-324, 2.5, 2**31 - 1]
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | huge
)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)


def _locations(body: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON tree, as a path of keys and indexes."""
    places = [here]
    if isinstance(body, dict):
        for key, value in body.items():
            places += _locations(value, (*here, key))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            places += _locations(value, (*here, index))
    return places


def _replace(body: Any, where: tuple[Any, ...], value: Any) -> Any:
    if not where:
        return value
    out = copy.copy(body)
    out[where[0]] = _replace(body[where[0]], where[1:], value)
    return out


def _delete(body: Any, where: tuple[Any, ...]) -> Any:
    if len(where) == 1:
        out = copy.copy(body)
        del out[where[0]]
        return out
    return _replace(body, where[:1], _delete(body[where[0]], where[1:]))


@st.composite
def mutated_request(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid body with one defect: a member replaced, removed, or NaN/Infinity text."""
    path, body = draw(valid_request())
    where = draw(st.sampled_from(_locations(body)))
    how = draw(st.sampled_from(["replace", "delete", "non-finite"]))
    if how == "delete" and where:
        return path, json.dumps(_delete(body, where)).encode()
    if how == "non-finite":
        value = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return path, json.dumps(_replace(body, where, value)).encode()  # NaN, Infinity text
    return path, json.dumps(_replace(body, where, draw(json_values))).encode()


@st.composite
def malformed_text(draw: st.DrawFn) -> bytes:
    """Bytes that are not a JSON request: truncated, binary, bad UTF-8, scalars.

    (A UTF-8 byte-order mark before valid JSON is accepted, as RFC 8259 allows.)
    """
    _, body = draw(valid_request())
    text = json.dumps(body).encode()
    return draw(
        st.sampled_from(
            [
                text[: draw(st.integers(0, max(0, len(text) - 1)))],
                text.replace(b'"connectionDetails"', b'"connection\xffDetails"'),
                b"null",
                b"[]",
                b'"' + b"a" * 1000 + b'"',
            ]
        )
        | st.binary(max_size=2048)
    )


def _deep(depth: int, style: str) -> str:
    opening, closing = {"list": ("[", "]"), "object": ('{"a":', "}")}[style]
    return opening * depth + "0" + closing * depth


# --- the fuzz tests ----------------------------------------------------------------


@FUZZ
@given(
    request=valid_request(), content_type=st.sampled_from(["application/json", "text/plain", ""])
)
def test_valid_requests_are_answered_by_the_protocol(
    target: Target, request: tuple[str, Json], content_type: str
) -> None:
    path, body = request
    answer = exchange(
        target, "POST", path, json.dumps(body).encode(), {"Content-Type": content_type}
    )
    # valid requests may still select nothing (404) or mismatch a field's type (400)
    assert answer.status_code in (200, 400, 404)


@FUZZ
@given(request=mutated_request())
def test_mutated_requests_are_answered_by_the_protocol(
    target: Target, request: tuple[str, bytes]
) -> None:
    path, content = request
    exchange(target, "POST", path, content)


#: Content-Encoding values: what the mirror decodes, what it does not, and noise.
ENCODINGS = st.one_of(
    st.sampled_from(
        ["gzip", "x-gzip", "deflate", "identity", "", "br", "zstd", "compress", "GZIP"]
    ),
    st.sampled_from(["gzip, gzip", "deflate, identity", "gzip;q=1"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12),
)


@st.composite
def encoded_body(draw: st.DrawFn) -> bytes:
    """A request body encoded one way or another (or not), whole or cut short."""
    _, request = draw(valid_request())
    plain = json.dumps(request).encode()
    encoded = draw(
        st.sampled_from(
            [
                plain,
                gzip.compress(plain),
                zlib.compress(plain),
                zlib.compress(plain)[2:-4],  # raw deflate
                gzip.compress(gzip.compress(plain)),
                zlib.compress(b" " * (MAX_BODY + 1)),  # inflates past the cap
            ]
        )
    )
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(encoded)))
        encoded = encoded[:cut] + draw(st.binary(max_size=8))
    return encoded


@FUZZ
@given(
    encoding=ENCODINGS,
    content=encoded_body(),
    path=st.sampled_from(sorted(ROUTES)),
)
def test_any_content_encoding_is_answered_by_the_protocol(
    target: Target, encoding: str, content: bytes, path: str
) -> None:
    """Decoded (gzip, deflate), or refused with a 400 (413 past the cap): never a 5xx,
    never aiohttp's own text/plain answer."""
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    answer = exchange(target, "POST", path, content, headers)
    if encoding.strip().lower() not in ("gzip", "x-gzip", "deflate", "identity", ""):
        assert answer.status_code == 400, (encoding, answer.status_code)


@FUZZ
@given(content=malformed_text(), path=st.sampled_from(sorted(ROUTES)))
def test_malformed_bodies_are_answered_with_an_error(
    target: Target, content: bytes, path: str
) -> None:
    answer = exchange(target, "POST", path, content)
    assert answer.status_code == 400


@FUZZ
@given(
    depth=st.integers(1, MAX_BODY // 5)
    | st.sampled_from([999, 1000, 1001, 5000, MAX_BODY // 2 - 100, 200_000]),  # under, past the cap
    style=st.sampled_from(["list", "object"]),
    where=st.sampled_from(["body", "connectionDetails", "condition value"]),
)
def test_deeply_nested_json_is_answered(target: Target, depth: int, style: str, where: str) -> None:
    deep = _deep(depth, style)
    content = {
        "body": deep,
        "connectionDetails": f'{{"connectionDetails": {{"x": {deep}}}}}',
        "condition value": '{"connectionDetails": {}, "query": {"startTime": 0, "endTime": 1, '
        f'"conditions": [{{"key": "host", "value": {{"value": {deep}}}}}]}}}}',
    }[where]
    answer = exchange(target, "POST", "/api/metric", content.encode())
    assert answer.status_code in (400, 404, 413)


@FUZZ_LARGE
@given(size=st.integers(1_000, MAX_BODY + 4096) | st.sampled_from([MAX_BODY - 200, MAX_BODY + 1]))
def test_a_large_in_set_value_up_to_the_body_cap(target: Target, size: int) -> None:
    envelope = {
        "connectionDetails": {},
        "query": {
            "startTime": T0,
            "endTime": T0 + HOUR,
            "conditions": [
                {"key": "metric", "value": {"value": "cpu.user", "_type": "StringValue"}},
                {"key": "host", "value": {"value": ["a-host"], "_type": "InSetValue"}},
            ],
        },
    }
    base = len(json.dumps(envelope))
    hosts = ["a-host"] + [f"h{i:09d}" for i in range(max(0, (size - base) // 14))]
    envelope["query"]["conditions"][1]["value"]["value"] = hosts
    content = json.dumps(envelope).encode()
    answer = exchange(target, "POST", "/api/metric", content)
    if len(content) > MAX_BODY:
        assert answer.status_code == 413
    else:
        assert answer.status_code == 200
        assert len(answer.json()["telemetry"]["points"]) == 360


@FUZZ
@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "POST"]),
    path=st.sampled_from(
        [*ROUTES, "/", "/api", "/api/", "/api/metric/", "/healthz", "/openapi.json"]
    )
    | st.text(min_size=1, max_size=30).map(lambda t: "/" + t),
)
def test_any_method_and_path_is_answered(target: Target, method: str, path: str) -> None:
    answer = exchange(target, method, path, b"{}" if method in ("POST", "PUT", "PATCH") else b"")
    if method not in ("GET", "HEAD") or path not in ("/healthz", "/openapi.json"):
        assert answer.status_code >= 400, (method, path)


def test_edge_numbers_in_json_text(target: Target) -> None:
    """NaN/Infinity spelled in the text, and numbers no int64 holds, in every time field."""
    for token in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 400):
        for member in ("startTime", "endTime", "limit"):
            query = {"startTime": T0, "endTime": T0 + HOUR, "limit": 10}
            text = json.dumps({"connectionDetails": {}, "query": query})
            text = text.replace(f'"{member}": {query[member]}', f'"{member}": {token}')
            answer = exchange(target, "POST", "/api/metric", text.encode())
            assert answer.status_code in (400, 404), (token, member)


# --- schemathesis, from the served document ----------------------------------------

SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def served_url(target: Target) -> str:
    return target.mirror.url


@SCHEMA.parametrize()
@settings(FUZZ, suppress_health_check=list(HealthCheck))
def test_schemathesis(case: Any, served_url: str) -> None:
    """All of schemathesis' checks but one, excluded for a stated reason:

    ``positive_data_acceptance``: a schema-valid request can still be refused by the
    data (a condition's type against the field's actual type, a bucket larger than
    the work cap): 400s no schema can foresee.
    """
    STATS["schemathesis requests"] += 1
    case.call_and_validate(base_url=served_url, excluded_checks=[positive_data_acceptance])


# --- the Prometheus and CSV routes: connection details against configured stores ----
# (tests/misbehaving_store.py serves Prometheus-like stores that answer well or badly)

STORE_MODES = ("ok", "ok-gzip", "several-series", "ragged", "deep", "bomb", "labels-not-strings")


@pytest.fixture(scope="module")
def store_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Target, Any, str]]:
    """A mirror with Prometheus stores (one per mode) and a CSV directory store."""
    from misbehaving_store import misbehaving_store

    from mirror_kit.sources import CsvStore, PrometheusSource, RoutingSource, SyntheticSource
    from mirror_kit.sources.tabular import sample_csv_path

    directory = tmp_path_factory.mktemp("csv")
    (directory / "sample.csv").write_bytes(sample_csv_path().read_bytes())
    (directory / "broken.csv").write_text("timestamp,host,v\n1,a\n")
    limits = Limits(max_points=20_000, max_answer_points=2_000)
    with misbehaving_store() as store:
        stores: dict[str, Any] = {
            mode: PrometheusSource(store.url(mode), timeout_s=5.0) for mode in STORE_MODES
        }
        stores["synthetic"] = SyntheticSource()
        stores["csv"] = CsvStore(directory=directory)
        with (
            start_mirror(
                RoutingSource(stores), port=0, settings=ServerSettings(limits=limits)
            ) as mirror,
            httpx.Client(base_url=mirror.url, timeout=30.0) as http,
        ):
            yield Target(mirror, http), store, str(directory)


@st.composite
def store_details(draw: st.DrawFn, store_url: Any) -> Json:
    """Connection details as forms for this kit and for other mirrors write them."""
    details: Json = {}
    keys = draw(st.sets(st.sampled_from(
        ["source", "url", "host", "port", "file", "timeColumn", "labelColumns", "step",
         "nanInterpretation", "headers", "nonce", "requestTimeout", "basicAuth"]
    ), max_size=5))  # fmt: skip
    loopback_urls = st.sampled_from(STORE_MODES).map(store_url) | st.sampled_from(
        ["http://127.0.0.1:1/", "http://127.0.0.1:99999", "ftp://127.0.0.1", "http://x.invalid"]
    )
    values: dict[str, st.SearchStrategy[Any]] = {
        "source": st.sampled_from([*STORE_MODES, "csv", "synthetic", "prometheus"]) | json_values,
        "url": loopback_urls | json_values,
        "host": st.sampled_from(["127.0.0.1", "localhost", "a/b"]) | json_values,
        "port": st.integers(-1, 70_000) | json_values,
        "file": st.sampled_from(["sample.csv", "broken.csv", "../x.csv", "/etc/passwd", ""])
        | json_values,
        "timeColumn": st.sampled_from(["timestamp", "host", "nope"]) | json_values,
        "labelColumns": st.lists(st.sampled_from(["host", "region", "cpu.user"])) | json_values,
        "step": st.sampled_from(["1m", "10s", 0, -5, "ten"]) | json_values,
        "nanInterpretation": st.sampled_from(["ZERO", "DROP", "x"]) | json_values,
        "headers": st.dictionaries(st.sampled_from(["X-A", "Host"]), st.text(max_size=5))
        | json_values,
        "nonce": json_values,
        "requestTimeout": st.integers(-5, 20_000) | json_values,
        "basicAuth": json_values,
    }
    for key in sorted(keys):
        details[key] = draw(values[key])
    return details


def store_exchange(target: Target, path: str, body: Any, hidden: str) -> httpx.Response:
    """Like ``exchange``, but a store may fail: 502 and 504 are protocol answers too."""
    STATS["store requests"] += 1
    answer = target.http.post(path, content=json.dumps(body).encode())
    STATS[f"store status {answer.status_code}"] += 1
    problems = [p for p in _problems(target, "POST", path, answer) if "5xx" not in p]
    if answer.status_code >= 500 and answer.status_code not in (502, 504):
        problems.append(f"status {answer.status_code}")
    if hidden in answer.text:
        problems.append("a server path in the answer")
    if problems:
        STATS["protocol violations"] += 1
        raise AssertionError(f"POST {path} {body} -> {answer.status_code}: {problems}")
    return answer


@FUZZ
@given(data=st.data())
def test_prometheus_and_csv_routes_answer_by_the_protocol(
    store_target: tuple[Target, Any, str], data: st.DataObject
) -> None:
    target, store, directory = store_target
    path, body = data.draw(valid_request())
    body["connectionDetails"] = data.draw(store_details(store.url))
    before = {mode for mode, _, _ in store.requests}
    store_exchange(target, path, body, directory)
    contacted = {mode for mode, _, _ in store.requests} - before
    assert contacted <= set(STORE_MODES)  # only configured stores are ever asked


@FUZZ
@given(
    mode=st.sampled_from([*STORE_MODES, "csv"]),
    path=st.sampled_from(sorted(ROUTES)),
    data=st.data(),
)
def test_each_store_answers_every_method_by_the_protocol(
    store_target: tuple[Target, Any, str], mode: str, path: str, data: st.DataObject
) -> None:
    target, _, directory = store_target
    request_type = ROUTES[path]
    details: Json = {"source": mode}
    if mode == "csv":
        details["file"] = data.draw(st.sampled_from(["sample.csv", "broken.csv"]))
    body: Json = {"connectionDetails": details}
    if path != "/api/connection":
        body["query"] = data.draw(query(request_type.query_type.type_name))
    store_exchange(target, path, body, directory)
