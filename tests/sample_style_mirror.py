"""A stdlib mirror that behaves like the StackState tutorial's sample ``mirror_server.py``.

Written from the facts in MIRROR_API.md ("Facts of the sample mirror"), not copied:
http.server, HTTP/1.0, API key ``api_key``; field names ``field1`` STRING, ``field2``
BOOLEAN, ``field3`` NUMBER; field values ``value1`` and ``cpu.*`` whatever is asked;
metrics: uniform random values in [0, 100) every (endTime - startTime) / 50 ms,
ignoring conditions, limit, bucketSizeMillis and the aggregation method. Like the
sample, only the metric handler parses the body, unguarded: malformed JSON or a
missing ``query`` raise inside the handler, and http.server then closes the
connection without an answer.

One deviation, for test stability: every handler reads the request body. The
sample's other handlers leave it unread, and closing a socket with unread input
makes Linux send a reset that can destroy the answer in flight.

Run it alone like the sample: ``python tests/sample_style_mirror.py`` (127.0.0.1:7007).
"""

from __future__ import annotations

import json
import random
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "api_key"
POINTS_PER_ANSWER = 50

FIELD_NAMES: dict[str, Any] = {
    "_type": "FieldNamesResponse",
    "fields": [
        {"_type": "FieldDescriptor", "fieldName": name, "fieldType": kind, "classified": False}
        for name, kind in (("field1", "STRING"), ("field2", "BOOLEAN"), ("field3", "NUMBER"))
    ],
    "isPartial": False,
}
FIELD_VALUES: dict[str, Any] = {
    "_type": "FieldValuesResponse",
    "values": [
        {"value": "value1", "_type": "CompleteValue"},
        {"value": "cpu.*", "_type": "FieldValuePattern"},
    ],
    "isPartial": False,
}


def metric_answer(query: dict[str, Any]) -> dict[str, Any]:
    """About 50 random points over the asked range, whatever else is asked."""
    start, end = query["startTime"], query["endTime"]
    step = int((end - start) / POINTS_PER_ANSWER) or 1000
    aggregated = query.get("aggregation") is not None
    points = [
        [random.random() * 100, t, t + step] if aggregated else [random.random() * 100, t]
        for t in range(start, end, step)
    ]
    kind = "AggregatedMetricTelemetry" if aggregated else "RawMetricTelemetry"
    data_format = (
        ["value", "startTimestamp", "endTimestamp"] if aggregated else ["value", "timestamp"]
    )
    telemetry = {"points": points, "dataFormat": data_format, "isPartial": False, "_type": kind}
    return {"telemetry": telemetry, "_type": "MetricsResponse"}


class SampleStyleHandler(BaseHTTPRequestHandler):
    """The four POST paths; anything else gets a bare 501 (headers never flushed)."""

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/api/connection":
            self._json({"status": "OK", "_type": "TestConnectionResponse"})
        elif self.path == "/api/field/name":
            self._json(FIELD_NAMES)
        elif self.path == "/api/field/value":
            self._json(FIELD_VALUES)
        elif self.path == "/api/metric":
            self._json(metric_answer(json.loads(raw)["query"]))  # raises on bad input
        else:
            self.send_response(501)

    def do_GET(self) -> None:
        self.send_response(501)

    def _json(self, payload: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-type", "application/json")
        self.send_header("X-Mirror-api-key", API_KEY)
        self.end_headers()
        self.wfile.write(json.dumps(payload).encode())

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the sample prints every request; tests do not need that."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The sample prints a traceback here; the connection is closed either way."""


@contextmanager
def serve_sample_style(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a background thread; yields the base URL; stops on exit."""
    server = _QuietServer((host, port), SampleStyleHandler)
    thread = threading.Thread(target=server.serve_forever, name="sample-style", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


if __name__ == "__main__":
    with serve_sample_style(port=7007) as url:
        print(f"The sample-style mirror is listening on {url}; Ctrl-C stops it", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            sys.exit(0)
