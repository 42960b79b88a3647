"""The StackState traffic simulator: what it asks, when, and what it reports.

Runs are time-compressed (a few simulated minutes in about a second) against the
kit's own mirror, a recording mirror that shows the exact requests, the sample-style
mirror whose random answers must be flagged, and a mirror too slow for the UI.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from conftest import T0
from sample_style_mirror import serve_sample_style

from mirror_kit import RunningMirror
from mirror_kit.cli import main
from mirror_kit.simulate import Clock, LoadModel, simulate

#: five streams, two monitors and one wizard for five simulated minutes, in about a second
SMALL = LoadModel(live_streams=5, monitors=2, wizard_sessions=1)
FIVE_MINUTES = Clock(start_ms=T0, duration_s=300, speed=300)


async def test_against_the_kit_every_poll_is_answered_and_polls_agree(
    mirror: RunningMirror,
) -> None:
    report = await simulate(mirror.url, model=SMALL, clock=FIVE_MINUTES, api_key="api_key")

    assert report.ok, report.lines()
    streams, monitors = report.kinds["live stream"], report.kinds["monitor"]
    assert streams.requests == 5 * 5  # five polls each, one a minute
    assert monitors.requests == 2 * 5
    # whole one-minute windows only: 60 for stream 0, whose window is aligned, and 59
    # for the others, whose window cuts a minute at each end
    assert streams.points == 5 * (60 + 4 * 59)
    assert report.kinds["wizard metrics"].requests == 1
    assert report.kinds["wizard field values"].requests >= 2  # host, then metric
    # successive polls overlap by 59 buckets: all compared, none contradicting
    assert report.consistency.polls_compared == 5 * 4 + 2 * 4
    assert report.consistency.buckets_compared >= 5 * 4 * 58
    assert report.consistency.mismatched == 0
    assert report.consistency.moving_edges == 0  # no cut window is answered: none moves
    metric_requests = [e for e in mirror.requests() if e.method == "metric"]
    assert len(metric_requests) == 25 + 10 + 1  # the simulator really asked each

    again = await simulate(mirror.url, model=SMALL, clock=FIVE_MINUTES, api_key="api_key")
    assert report.same_answers(again) == (35, 0)  # the same questions, the same answers


class Recorder:
    """A mirror that answers every metric query with one point per bucket (value =
    bucket start / 1000, so the same bucket always has the same value) and keeps
    every body it received."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.delay_s = delay_s

    async def metric(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        await asyncio.sleep(self.delay_s)
        query = body["query"]
        bucket = query["aggregation"]["bucketSizeMillis"]
        first = query["startTime"] - query["startTime"] % bucket
        points = [[t / 1000, t, t + bucket] for t in range(first, query["endTime"], bucket)]
        telemetry = {
            "_type": "AggregatedMetricTelemetry",
            "points": points,
            "dataFormat": ["value", "startTimestamp", "endTimestamp"],
            "isPartial": False,
        }
        return web.json_response(
            {"_type": "MetricsResponse", "telemetry": telemetry},
            headers={"X-MIRROR-API-KEY": "k"},
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/metric", self.metric)
        return app


async def test_windows_slide_to_the_scheduled_now_with_stackstates_defaults(
    aiohttp_server: Any,
) -> None:
    recorder = Recorder()
    server = await aiohttp_server(recorder.app(), host="127.0.0.1")
    model = LoadModel(live_streams=2, monitors=1, wizard_sessions=0)
    clock = Clock(start_ms=T0, duration_s=180, speed=180)
    report = await simulate(
        str(server.make_url("/")),
        model=model,
        clock=clock,
        api_key="k",
        series=[{"host": "a-host"}],
        connection_details={"source": "x"},
    )

    assert report.ok, report.lines()
    by_end = sorted(recorder.bodies, key=lambda b: b["query"]["endTime"])
    streams = [b for b in by_end if b["query"]["endTime"] - b["query"]["startTime"] == 3_600_000]
    monitors = [b for b in by_end if b["query"]["endTime"] - b["query"]["startTime"] == 300_000]
    # stream 0 at 0, 60, 120 s; stream 1 half an interval later; the monitor at 0, 60, 120 s
    assert [b["query"]["endTime"] - T0 for b in streams] == [
        0,
        30_000,
        60_000,
        90_000,
        120_000,
        150_000,
    ]
    assert [b["query"]["endTime"] - T0 for b in monitors] == [0, 60_000, 120_000]
    for body in streams + monitors:
        query = body["query"]
        assert body["connectionDetails"] == {"source": "x"}
        assert query["aggregation"]["method"] == "MEAN"
        assert query["aggregation"]["bucketSizeMillis"] == 60_000
        assert query["conditions"][0]["key"] == "host"
    assert {b["query"]["limit"] for b in streams} == {10_000}


async def test_a_mirror_answering_at_random_is_flagged_inconsistent() -> None:
    with serve_sample_style() as url:
        report = await simulate(
            url,
            # the sample's grid is the window / 50 (72 s for an hour): polls 72 s apart
            # share buckets, so their values can be compared
            model=LoadModel(live_streams=2, monitors=0, wizard_sessions=0, poll_interval_s=72),
            clock=Clock(start_ms=T0, duration_s=144, speed=144),
            api_key="api_key",
            series=[{"field1": "value1"}],
        )
    assert sum(k.errors for k in report.kinds.values()) == 0
    assert report.consistency.polls_compared == 2
    assert report.consistency.mismatched > 0
    assert report.consistency.examples
    assert not report.ok
    with serve_sample_style() as url:
        again = await simulate(
            url,
            model=LoadModel(live_streams=2, monitors=0, wizard_sessions=0, poll_interval_s=72),
            clock=Clock(start_ms=T0, duration_s=144, speed=144),
            series=[{"field1": "value1"}],
        )
    compared, differing = report.same_answers(again)
    assert compared == 4 and differing == 4


async def test_a_grid_that_moves_with_the_window_is_counted_misaligned() -> None:
    with serve_sample_style() as url:  # polls 60 s apart, buckets 72 s wide from each start
        report = await simulate(
            url,
            model=LoadModel(live_streams=1, monitors=0, wizard_sessions=0),
            clock=Clock(start_ms=T0, duration_s=120, speed=240),
            series=[{}],
        )
    assert report.consistency.polls_compared == 0
    assert report.consistency.misaligned == 1


async def test_a_mirror_slower_than_the_ui_timeout_is_given_up_on(aiohttp_server: Any) -> None:
    server = await aiohttp_server(Recorder(delay_s=1.0).app(), host="127.0.0.1")
    report = await simulate(
        str(server.make_url("/")),
        model=LoadModel(live_streams=1, monitors=0, wizard_sessions=0, ui_timeout_s=0.2),
        clock=Clock(start_ms=T0, duration_s=60, speed=60),
        api_key="k",
        series=[{}],
    )
    stats = report.kinds["live stream"]
    assert stats.requests == 1 and stats.gave_up == 1
    assert "no answer within 0.2 s" in stats.error_samples[0]
    assert not report.ok


def test_cli_prints_the_report_and_writes_json(
    mirror: RunningMirror, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    code = main(
        [
            "simulate",
            mirror.url,
            "--api-key",
            "api_key",
            "--streams",
            "3",
            "--monitors",
            "1",
            "--wizards",
            "0",
            "--duration",
            "120",
            "--speed",
            "240",
            "--start",
            str(T0),
            "--condition",
            "host=a-host",
            "--condition",
            "metric=cpu.user",
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "verdict: OK" in printed and "live stream" in printed
    saved = json.loads(out.read_text())
    assert saved["ok"] is True
    assert {k["kind"]: k["requests"] for k in saved["kinds"]} == {"live stream": 6, "monitor": 2}


def test_cli_exits_1_when_stackstate_would_see_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with serve_sample_style() as url:
        code = main(
            [
                "simulate",
                url,
                "--streams",
                "2",
                "--monitors",
                "0",
                "--wizards",
                "0",
                "--poll-interval",
                "72",
                "--duration",
                "144",
                "--speed",
                "288",
                "--condition",
                "field1=value1",
            ]
        )
    printed = capsys.readouterr().out
    assert code == 1, printed
    assert "verdict: StackState would see errors" in printed


@pytest.mark.parametrize("flag", ["--streams=-1", "--speed=0", "--ui-timeout=0"])
def test_cli_refuses_a_model_that_cannot_run(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "http://127.0.0.1:9", flag]) == 2
    assert "error:" in capsys.readouterr().err
