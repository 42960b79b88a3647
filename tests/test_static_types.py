"""Typing promises checked by mypy: the client's calls return their responses, and
SyntheticSource satisfies the Shapeable protocol (structurally, signatures included).

A snippet using the API is type-checked with ``assert_type``; a wrong expectation in
it (checked below too) makes mypy fail, so these assertions can fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent

USES = """
from typing_extensions import assert_type

from mirror_kit import AsyncMirrorClient, MetricSeries, MirrorClient
from mirror_kit.sources import RoutingSource, Shapeable, SyntheticSource, shaping_of
from mirror_kit.protocol import (
    FieldNamesRequest, FieldNamesResponse, FieldValuesResponse, MetricsRequest,
    MetricsResponse, TestConnectionResponse,
)

SHAPEABLE: Shapeable = SyntheticSource()
assert_type(shaping_of(RoutingSource({"synthetic": SyntheticSource()})), Shapeable | None)


def sync(client: MirrorClient) -> None:
    assert_type(client.test_connection(), TestConnectionResponse)
    assert_type(client.field_names(start=0, host="a"), FieldNamesResponse)
    assert_type(client.field_values("metric", prefix="cpu"), FieldValuesResponse)
    assert_type(client.metrics(start=0, end=1, limit=5), MetricSeries)
    request = client.build.metrics(start=0, end=1, method="MAX", bucket_ms=60_000)
    assert_type(request, MetricsRequest)
    assert_type(client.send(request), MetricsResponse)
    assert_type(client.send(client.build.field_names()), FieldNamesResponse)


async def asynchronous(client: AsyncMirrorClient) -> None:
    assert_type(await client.test_connection(), TestConnectionResponse)
    assert_type(await client.field_names(), FieldNamesResponse)
    assert_type(await client.field_values("metric"), FieldValuesResponse)
    assert_type(await client.metrics(fetch_all=True), MetricSeries)
    assert_type(await client.send(client.build.metrics()), MetricsResponse)
"""


def test_calls_are_typed_with_their_responses(tmp_path: Path) -> None:
    """One mypy run over two snippets: the right one passes, the wrong one fails twice."""
    (tmp_path / "right.py").write_text(USES)
    wrong = USES.replace(
        "assert_type(await client.test_connection(), TestConnectionResponse)",
        "assert_type(client.test_connection(), TestConnectionResponse)",
    ).replace(
        "assert_type(client.metrics(start=0, end=1, limit=5), MetricSeries)",
        "assert_type(client.metrics(start=0, end=1, limit=5), MetricsResponse)",
    )
    (tmp_path / "wrong.py").write_text(wrong)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--follow-imports=silent",
            tmp_path / "right.py",
            tmp_path / "wrong.py",
        ],
        capture_output=True,
        text=True,
        timeout=500,
        cwd=ROOT,  # mypy finds the editable install's package from here
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    files = [Path(line.split(":")[0]).name for line in errors]
    assert files == ["wrong.py", "wrong.py"], done.stdout
    assert all("Expression is of type" in line for line in errors), done.stdout
