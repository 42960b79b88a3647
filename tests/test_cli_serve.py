"""``python -m mirror_kit serve`` as the tutorial's reader runs it: a real process.

The process is started on a free loopback port, asked the four methods over HTTP,
then stopped with SIGINT (Ctrl-C) and must exit with status 0 having printed what
to type into StackState's Mirror source form.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import HOUR, T0, free_port
from mirror_wire import (
    CONNECTION,
    FIELD_NAMES,
    FIELD_VALUES,
    METRIC,
    assert_aggregated_shape,
    assert_connection_ok,
    assert_error,
    assert_field_names_shape,
    assert_field_values_shape,
    assert_raw_shape,
    connection_body,
    field_names_body,
    field_values_body,
    metrics_body,
)

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 20.0
EXIT_TIMEOUT_S = 20.0


class Served:
    """A ``serve`` process and the URL it answers on."""

    def __init__(self, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "mirror_kit", "serve", "--port", str(self.port), *extra]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )

    def wait_ready(self, http: httpx.Client) -> httpx.Response:
        """Poll Test Connection until it answers: bounded in attempts and time."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        for _ in range(400):
            assert self.process.poll() is None, self.process.communicate()
            try:
                return http.post(CONNECTION, json=connection_body())
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        raise AssertionError(f"serve did not answer on {self.url}")

    def interrupt(self, signum: int = signal.SIGINT) -> tuple[int, str, str]:
        """Ctrl-C (or another signal); return (exit status, stdout, stderr)."""
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=EXIT_TIMEOUT_S)
        return self.process.returncode, out, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=EXIT_TIMEOUT_S)


@pytest.fixture
def served() -> Iterator[Served]:
    process = Served()
    try:
        yield process
    finally:
        process.kill()


def test_serve_answers_the_four_methods_and_stops_on_ctrl_c(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as http:
        first = served.wait_ready(http)
        assert first.status_code == 200 and first.headers["X-MIRROR-API-KEY"] == "api_key"
        assert_connection_ok(first.json())
        where = {"host": "a-host", "metric": "cpu.user"}
        answers = [
            http.post(FIELD_NAMES, json=field_names_body(T0, T0 + HOUR, {"host": "a-host"})),
            http.post(FIELD_VALUES, json=field_values_body("metric", T0, T0 + HOUR)),
            http.post(METRIC, json=metrics_body(T0, T0 + HOUR, where)),
            http.post(
                METRIC, json=metrics_body(T0, T0 + HOUR, where, method="MAX", bucket_ms=HOUR)
            ),
            http.post(METRIC, json={"connectionDetails": {}}),
            http.get(METRIC),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 400, 405]
    assert all(a.headers["x-mirror-api-key"] == "api_key" for a in answers)
    names, values, raw, aggregated, missing, get = (a.json() for a in answers)
    assert_field_names_shape(names)
    assert_field_values_shape(values)
    assert_raw_shape(raw)
    assert len(raw["telemetry"]["points"]) == 360
    assert_aggregated_shape(aggregated)
    assert len(aggregated["telemetry"]["points"]) == 1
    assert_error(missing, "RemoteMirrorError")
    assert_error(get, "RemoteMirrorError")

    status, out, err = served.interrupt()
    assert status == 0, err
    assert "Traceback" not in err
    assert f"http://127.0.0.1:{served.port}" in out
    assert re.search(r"Api Key:\s+api_key$", out, re.MULTILINE), out
    assert re.search(r"Connection details JSON:\s+\{\}$", out, re.MULTILINE), out
    assert re.search(rf"Mirror URL:\s+http://host\.docker\.internal:{served.port}\b", out), out


def test_serve_stops_cleanly_on_sigterm(served: Served) -> None:
    """What `docker stop` and service managers send: the same clean stop as Ctrl-C."""
    with httpx.Client(base_url=served.url, timeout=10) as http:
        assert_connection_ok(served.wait_ready(http).json())
    status, out, err = served.interrupt(signal.SIGTERM)
    assert status == 0, err
    assert out.rstrip().endswith("Stopped.") and "Traceback" not in err


def test_serve_with_custom_key_and_caps() -> None:
    served = Served("--api-key", "sekr3t", "--max-points", "100", "--max-body", "2048")
    try:
        with httpx.Client(base_url=served.url, timeout=10) as http:
            assert served.wait_ready(http).headers["X-MIRROR-API-KEY"] == "sekr3t"
            where = {"host": "a-host"}
            cut = http.post(METRIC, json=metrics_body(T0, T0 + HOUR, where))
            big = http.post(CONNECTION, json={"connectionDetails": {"pad": "x" * 4096}})
        assert cut.headers["X-MIRROR-API-KEY"] == "sekr3t"
        telemetry = cut.json()["telemetry"]
        assert len(telemetry["points"]) == 100 and telemetry["isPartial"] is True
        assert big.status_code == 413 and big.headers["X-MIRROR-API-KEY"] == "sekr3t"
        status, out, err = served.interrupt()
        assert status == 0, err
        assert re.search(r"Api Key:\s+sekr3t$", out, re.MULTILINE), out
    finally:
        served.kill()


def test_serve_takes_each_setting_from_its_variable_unless_a_flag_is_given() -> None:
    """Every flag --x-y is also MIRROR_KIT_X_Y, read by serve itself (before, serve read
    only a few; the image's entrypoint copied the others onto the command line)."""
    env = {
        "MIRROR_KIT_API_KEY": "from-env",
        "MIRROR_KIT_MAX_ANSWER_POINTS": "100",
        "MIRROR_KIT_MAX_POINTS": "7",  # the flag below wins
        "MIRROR_KIT_PROT": "typo",
    }
    served = Served("--max-points", "200", env=env)
    try:
        with httpx.Client(base_url=served.url, timeout=10) as http:
            assert served.wait_ready(http).headers["X-MIRROR-API-KEY"] == "from-env"
            cut = http.post(METRIC, json=metrics_body(T0, T0 + HOUR, {"host": "a-host"}))
        telemetry = cut.json()["telemetry"]
        assert len(telemetry["points"]) == 100 and telemetry["isPartial"] is True
        status, _, err = served.interrupt()
        assert status == 0, err
        assert "MIRROR_KIT_PROT is no `serve` flag" in err
    finally:
        served.kill()


def test_serve_names_the_variable_that_does_not_parse() -> None:
    served = Served(env={"MIRROR_KIT_STOP_GRACE": "soon"})
    _, err = served.process.communicate(timeout=EXIT_TIMEOUT_S)
    assert served.process.returncode == 2
    assert "MIRROR_KIT_STOP_GRACE='soon' is not a valid float" in err
