"""Parse and render time per request: the wire types of a git ref (old) against this tree.

    .venv/bin/python bench/bench_wire.py [--old main] [--repeat 7]

The old ``mirror_kit/protocol`` is taken from the ref with ``git archive`` and imported
beside the new one, so both run in the same process, one after the other, case by
case (the figures are the best of ``--repeat`` alternating rounds; compare the ratios, not the
absolute times, on a busy machine). Old parsing is what the server did before: orjson
then ``from_json``; new parsing is ``from_bytes`` (one msgspec decode). Rendering is
``to_bytes`` of the same answer built by each (the same JSON; ``_type`` now comes
first in each object). Prints one line per case.
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
import timeit
from pathlib import Path
from typing import Any

import numpy as np
import orjson

import mirror_kit.protocol as new

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_764_000_000_000
HOUR, DAY = 3_600_000, 86_400_000


def load_old(ref: str) -> Any:
    """``mirror_kit/protocol`` as of ``ref``, imported as the package ``old_protocol``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "mirror_kit/protocol"],
        check=True,
        capture_output=True,
    ).stdout
    where = Path(tempfile.mkdtemp(prefix="bench-wire-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    (where / "mirror_kit" / "protocol").rename(where / "old_protocol")
    sys.path.insert(0, str(where))
    return importlib.import_module("old_protocol")


def condition(key: str, value: Any, kind: str) -> dict[str, Any]:
    return {"key": key, "value": {"value": value, "_type": kind}, "_type": "EqualityCondition"}


def metrics_body(conditions: list[dict[str, Any]]) -> bytes:
    """A metric query as StackState sends it (metricField, aggregation, no limit)."""
    query = {
        "_type": "MetricsQuery",
        "conditions": conditions,
        "startTime": T0 - HOUR,
        "endTime": T0,
        "metricField": "double",
        "aggregation": {"method": "MEAN", "bucketSizeMillis": 60_000, "_type": "Aggregation"},
    }
    body = {"_type": "MetricsRequest", "connectionDetails": {}, "query": query}
    return orjson.dumps(body)


def bodies() -> dict[str, tuple[str, bytes]]:
    typical = [
        condition("host", "a-host", "StringValue"),
        condition("metric", "cpu.user", "StringValue"),
    ]
    hosts = ["a-host"] + [f"h{i:09d}" for i in range(64_000)]  # ~900 KB, under the 1 MiB cap
    hostile = [typical[1], condition("host", hosts, "InSetValue")]
    untyped = orjson.loads(metrics_body(typical))
    for c in untyped["query"]["conditions"]:
        del c["value"]["_type"]
    connection = orjson.dumps({"_type": "TestConnectionRequest", "connectionDetails": {}})
    return {
        "parse test connection": ("TestConnectionRequest", connection),
        "parse typical metrics request": ("MetricsRequest", metrics_body(typical)),
        "parse untyped metrics request": ("MetricsRequest", orjson.dumps(untyped)),
        "parse 900 KB InSetValue request": ("MetricsRequest", metrics_body(hostile)),
    }


def answers(protocol: Any) -> dict[str, Any]:
    """Per render case, the answer as ``protocol`` builds it."""
    starts = T0 - 1080 * 60_000 + np.arange(1080, dtype=np.int64) * 60_000
    values = np.random.default_rng(1).random(1080) * 100
    raw_times = T0 - 30 * DAY + np.arange(259_200, dtype=np.int64) * 10_000
    raw_values = np.random.default_rng(2).random(259_200) * 100
    return {
        "render 1,080-point aggregated answer": protocol.MetricsResponse(
            protocol.AggregatedMetricTelemetry(values, starts, starts + 60_000)
        ),
        "render 30-day raw answer (259,200 points)": protocol.MetricsResponse(
            protocol.RawMetricTelemetry(raw_values, raw_times)
        ),
    }


def compare(old: Any, new: Any, repeat: int) -> tuple[float, float]:
    """Seconds per call of each: the best of ``repeat`` rounds of about 0.1 s, the two
    alternating round by round so that a burst of load on the machine hits both."""
    number = max(1, int(0.1 / max(timeit.timeit(old, number=1), 1e-7)))
    rounds = [(timeit.timeit(old, number=number), timeit.timeit(new, number=number))]
    rounds += [
        (timeit.timeit(old, number=number), timeit.timeit(new, number=number))
        for _ in range(repeat - 1)
    ]
    return min(r[0] for r in rounds) / number, min(r[1] for r in rounds) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", default="main", help="git ref of the old wire types")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    old = load_old(args.old)
    print(f"{'case':44} {'old':>10} {'new':>10} {'new/old':>8}")
    for case, (name, raw) in bodies().items():
        old_type, new_type = getattr(old, name), getattr(new, name)
        parsed = new_type.from_bytes(raw)
        assert parsed.to_json() == old_type.from_json(orjson.loads(raw)).to_json(), case
        before, after = compare(
            lambda: old_type.from_json(orjson.loads(raw)),  # noqa: B023
            lambda: new_type.from_bytes(raw),  # noqa: B023
            args.repeat,
        )
        print(f"{case:44} {before * 1e6:8.1f}us {after * 1e6:8.1f}us {after / before:7.2f}x")
    olds, news = answers(old), answers(new)
    for case, answer in news.items():
        assert orjson.loads(answer.to_bytes()) == orjson.loads(olds[case].to_bytes()), case
        before, after = compare(olds[case].to_bytes, answer.to_bytes, args.repeat)
        print(f"{case:44} {before * 1e6:8.1f}us {after * 1e6:8.1f}us {after / before:7.2f}x")


if __name__ == "__main__":
    main()
