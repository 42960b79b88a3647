"""Optional shared-secret authentication: off by default, header or path token when on.

The path-token variant is the one StackState can use as it is (Mirror URL
``http://host:7007/<secret>``), so it is checked with the package's own client
given exactly such a base URL, the way the Mirror plugin appends method paths.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import HOUR, T0
from mirror_wire import CONNECTION, METRIC, connection_body, metrics_body
from openapi_check import DOCUMENT, answer_errors

from mirror_kit import MirrorClient, RunningMirror, ServerSettings, create_app, start_mirror
from mirror_kit.protocol import RemoteMirrorError
from mirror_kit.server import API_KEY_HEADER
from mirror_kit.server.auth import AUTH_HEADER, new_secret

SECRET = "Zr4-k9_Qm2.x7~Lp0wYt"
A_CPU = {"host": "a-host", "metric": "cpu.user"}


@pytest.fixture
def guarded() -> Iterator[RunningMirror]:
    with start_mirror(port=0, settings=ServerSettings(auth_secret=SECRET)) as mirror:
        yield mirror


def _assert_forbidden(answer: httpx.Response, mirror: RunningMirror, path: str) -> None:
    assert answer.status_code == 403
    assert answer.headers[API_KEY_HEADER] == mirror.api_key
    body = answer.json()
    assert body["_type"] == "RemoteMirrorError"
    assert SECRET not in answer.text
    assert answer_errors(DOCUMENT, path, "post", 403, body) == []


def test_off_by_default_every_request_is_served(mirror: RunningMirror) -> None:
    answer = httpx.post(mirror.url + CONNECTION, json=connection_body())
    assert answer.status_code == 200
    # without a secret nothing is mounted under a prefix
    prefixed = httpx.post(f"{mirror.url}/{SECRET}{CONNECTION}", json=connection_body())
    assert prefixed.status_code == 404


@pytest.mark.parametrize("header", [None, "", "wrong", SECRET[:-1], SECRET + "x", SECRET.upper()])
def test_requests_without_the_secret_are_refused(
    guarded: RunningMirror, header: str | None
) -> None:
    headers = {} if header is None else {AUTH_HEADER: header}
    for path, body in (
        (CONNECTION, connection_body()),
        (METRIC, metrics_body(T0, T0 + HOUR, A_CPU)),
    ):
        _assert_forbidden(httpx.post(guarded.url + path, json=body, headers=headers), guarded, path)


@pytest.mark.parametrize("prefix", ["/wrong", f"/{SECRET}x", f"/{SECRET[1:]}", "/api"])
def test_a_wrong_path_token_is_refused(guarded: RunningMirror, prefix: str) -> None:
    answer = httpx.post(guarded.url + prefix + CONNECTION, json=connection_body())
    _assert_forbidden(answer, guarded, CONNECTION)


def test_unknown_paths_and_methods_are_refused_before_they_are_routed(
    guarded: RunningMirror,
) -> None:
    for method, path in (("POST", "/api/nothing"), ("GET", METRIC), ("PUT", "/")):
        answer = httpx.request(method, guarded.url + path)
        assert answer.status_code == 403, (method, path)
        assert answer.headers[API_KEY_HEADER] == guarded.api_key


def test_the_header_authorizes(guarded: RunningMirror) -> None:
    answer = httpx.post(
        guarded.url + METRIC,
        json=metrics_body(T0, T0 + HOUR, A_CPU),
        headers={AUTH_HEADER: SECRET},
    )
    assert answer.status_code == 200
    assert len(answer.json()["telemetry"]["points"]) == 360


def test_the_path_token_works_as_a_stackstate_mirror_url(guarded: RunningMirror) -> None:
    with MirrorClient(f"{guarded.url}/{SECRET}", api_key=guarded.api_key) as client:
        assert client.test_connection().ok
        series = client.metrics(start=T0, end=T0 + HOUR, **A_CPU)
    assert len(series.values) == 360
    with (
        MirrorClient(guarded.url, api_key=guarded.api_key) as bare,
        pytest.raises(RemoteMirrorError, match="Forbidden") as refused,
    ):
        bare.metrics(start=T0, end=T0 + HOUR, **A_CPU)
    assert refused.value.http_status == 403


def test_the_request_log_never_shows_the_secret(guarded: RunningMirror) -> None:
    httpx.post(f"{guarded.url}/{SECRET}{CONNECTION}", json=connection_body())
    httpx.post(f"{guarded.url}/wrong{CONNECTION}", json=connection_body())
    entries = guarded.requests()
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("connection", CONNECTION, 200),
        ("POST", f"/wrong{CONNECTION}", 403),
    ]
    assert all(SECRET not in repr(e) for e in entries)


def test_probes_and_the_document_stay_open(guarded: RunningMirror) -> None:
    for path in ("/healthz", "/openapi.json", f"/{SECRET}/healthz", f"/{SECRET}/openapi.json"):
        answer = httpx.get(guarded.url + path)
        assert answer.status_code == 200, path
        assert answer.headers[API_KEY_HEADER] == guarded.api_key


@pytest.mark.parametrize("secret", ["", "short", "has/slash-0123456789", "spaces are bad 0123456"])
def test_secrets_unusable_in_a_url_path_are_rejected(secret: str) -> None:
    with pytest.raises(ValueError, match="auth secret"):
        create_app(settings=ServerSettings(auth_secret=secret))


def test_new_secrets_are_accepted_and_distinct() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    create_app(settings=ServerSettings(auth_secret=first))
