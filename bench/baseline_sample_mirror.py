"""The benchmark's baseline: the tutorial's sample mirror, as a stdlib ThreadingHTTPServer.

Written in the style of StackState's tutorial ``mirror_server.py`` (its facts are
in shared/MIRROR_API.md): a ``BaseHTTPRequestHandler`` on a ``ThreadingHTTPServer``
that answers the four paths with fixed field names/values and uniform random
points from Python's ``random``, ``json.dumps`` for every body, 501 for anything
else. It is what a user of the tutorial starts from, so it is what the mirror is
measured against.

Deliberate differences (see bench/README.md). The first gives both servers the
same work; the others make the baseline *faster*, so that the comparison flatters
it rather than the mirror:

* ``--points`` points per metric answer instead of the sample's ~50: the bench
  passes 1080, what the mirror returns for the 3-hour raw query at 10 s, so both
  servers produce and serialise the same amount of data;
* HTTP/1.1 keep-alive with ``Content-Length`` (the sample speaks HTTP/1.0 and
  closes every connection) and request bodies always read, so the load generator
  can reuse connections as it does with the mirror;
* TCP_NODELAY (``disable_nagle_algorithm``): without it every answer waits ~40 ms
  for a delayed ACK, a TCP artefact rather than the server's work;
* no ``print`` of every request and response body, and a listen backlog of 128
  instead of 5 (32 connections opening at once would otherwise wait for SYN
  retransmits).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY_HEADER = "X-MIRROR-API-KEY"

FIELD_NAMES = {
    "_type": "FieldNamesResponse",
    "fields": [
        {"_type": "FieldDescriptor", "classified": False, "fieldName": name, "fieldType": kind}
        for name, kind in (("field1", "STRING"), ("field2", "BOOLEAN"), ("field3", "NUMBER"))
    ],
    "isPartial": False,
}
FIELD_VALUES = {
    "values": [
        {"value": "value1", "_type": "CompleteValue"},
        {"value": "cpu.*", "_type": "FieldValuePattern"},
    ],
    "isPartial": False,
    "_type": "FieldValuesResponse",
}


class SampleMirrorHandler(BaseHTTPRequestHandler):
    """Answers the four Mirror API paths the way the tutorial's sample does."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle's algorithm on, the body waits
    # for the client's delayed ACK (40 ms on Linux) and every answer takes 40+ ms.
    disable_nagle_algorithm = True
    api_key = "api_key"
    points = 50

    def do_POST(self) -> None:
        payload = self._read_body()
        if self.path == "/api/connection":
            self._json_response({"status": "OK", "_type": "TestConnectionResponse"})
        elif self.path == "/api/field/name":
            self._json_response(FIELD_NAMES)
        elif self.path == "/api/field/value":
            self._json_response(FIELD_VALUES)
        elif self.path == "/api/metric":
            self._json_response(self._metric(json.loads(payload)))
        else:
            self._not_implemented()

    def _not_implemented(self) -> None:
        self.send_response(501)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_HEAD = _not_implemented

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the sample prints every request, which would measure the terminal."""

    def _read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _json_response(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header(API_KEY_HEADER, self.api_key)
        self.end_headers()
        self.wfile.write(body)

    def _metric(self, request: dict[str, Any]) -> dict[str, Any]:
        """``points`` uniform random values over the range, whatever else is asked."""
        query = request["query"]
        start, end = query["startTime"], query["endTime"]
        step = (end - start) // self.points or 1000
        if query.get("aggregation") is not None:
            points = [[random.random() * 100, t, t + step] for t in range(start, end, step)]
            telemetry = {
                "points": points,
                "dataFormat": ["value", "startTimestamp", "endTimestamp"],
                "isPartial": False,
                "_type": "AggregatedMetricTelemetry",
            }
        else:
            points = [[random.random() * 100, t] for t in range(start, end, step)]
            telemetry = {
                "points": points,
                "dataFormat": ["value", "timestamp"],
                "isPartial": False,
                "_type": "RawMetricTelemetry",
            }
        return {"telemetry": telemetry, "_type": "MetricsResponse"}


class BaselineServer(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7007)
    parser.add_argument("--points", type=int, default=50, help="points per metric answer")
    args = parser.parse_args()
    SampleMirrorHandler.points = max(args.points, 1)
    with BaselineServer((args.host, args.port), SampleMirrorHandler) as httpd:
        print(f"baseline sample mirror on http://{args.host}:{args.port}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            httpd.serve_forever()


if __name__ == "__main__":
    main()
