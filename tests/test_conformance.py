"""The conformance checker: the kit's mirror passes, each broken mirror fails its check.

Every check that can FAIL is proven able to fail by a mirror broken in that one
way (tests/broken_mirrors.py); the sample-style stdlib mirror gets exactly the
findings its documented behaviour implies.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from broken_mirrors import (
    API_KEY,
    BROKEN,
    BROKEN_SEVERAL,
    TOKEN,
    AnswersHtml,
    AnswersJsonOddities,
    ErrorsWithStatus200,
    HangsOnMetrics,
    Mirror,
    Noisy,
    PartialLastWindow,
    RequiresToken,
    serving,
)
from conftest import HOUR, T0
from sample_style_mirror import serve_sample_style

from mirror_kit import RunningMirror, start_mirror
from mirror_kit.cli import main
from mirror_kit.conformance import (
    CHECK_IDS,
    Level,
    Profile,
    Report,
    Status,
    report_table,
    run_checks,
    validate,
)
from mirror_kit.protocol import Aggregation, AggregationMethod, MetricsQuery

#: Client timeout against the test mirrors: they answer at once unless they hang.
TIMEOUT = 1.0


#: Checks that never FAIL: determinism (the tutorial's sample is random by design) and
#: the edge-bucket report (a policy, reported as a quality note).
NEVER_FAIL = {"determinism", "metrics.edge-buckets"}


def check_broken(mirror: Mirror, **options: object) -> Report:
    with serving(mirror.app()) as url:
        return run_checks(url, api_key=API_KEY, timeout=TIMEOUT, **options)  # type: ignore[arg-type]


def test_kit_mirror_passes_every_check(mirror: RunningMirror) -> None:
    report = run_checks(mirror.url, api_key=mirror.api_key)
    assert [r.check for r in report.results] == list(CHECK_IDS)
    assert {r.check: r.status for r in report.results} == {c: Status.PASS for c in CHECK_IDS}
    assert report.ok and report.conditions == "host=a-host"
    assert all(r.spec.startswith("MIRROR_API.md § ") for r in report.results)
    total = len(CHECK_IDS)
    assert report.score_line() == f"{total}/{total} StackState, {total}/{total} strict"


def test_fixed_range_and_bucket(mirror: RunningMirror) -> None:
    report = run_checks(
        mirror.url, api_key=mirror.api_key, start=T0, end=T0 + HOUR, bucket_ms=600_000
    )
    assert (report.start_time, report.end_time) == (T0, T0 + HOUR)
    assert report.with_status(Status.PASS) == list(CHECK_IDS)
    assert "360 raw points" in report.result("discovery").reason
    assert "6 windows" in report.result("metrics.aggregated").reason


@pytest.mark.parametrize(
    ("broken", "check"), BROKEN, ids=[f"{cls.__name__}-{check}" for cls, check in BROKEN]
)
def test_broken_mirror_fails_exactly_its_check(broken: type[Mirror], check: str) -> None:
    """Strict: that check FAILs alone. As StackState: a FAIL only if StackState breaks."""
    report = check_broken(broken(), profile="strict")
    assert report.with_status(Status.FAIL) == [check]
    failed = report.result(check)
    assert failed.request is not None and failed.request.startswith("POST /api/")
    assert not report.ok
    assert failed.level in (Level.BREAKS, Level.DATA)
    expected = Status.FAIL if failed.level is Level.BREAKS else Status.WARN
    assert failed.status_in(Profile.STACKSTATE) is expected


@pytest.mark.parametrize(
    ("broken", "checks"), BROKEN_SEVERAL, ids=[cls.__name__ for cls, _ in BROKEN_SEVERAL]
)
def test_wrong_values_are_caught_by_the_value_checks(
    broken: type[Mirror], checks: tuple[str, ...]
) -> None:
    """The same number for every method (the aws peer), windows labelled one late."""
    strict = check_broken(broken(), profile="strict")
    assert strict.with_status(Status.FAIL) == list(checks)
    assert all(strict.result(c).level is Level.DATA for c in checks)
    as_stackstate = check_broken(broken())
    assert as_stackstate.ok and set(checks) <= set(as_stackstate.with_status(Status.WARN))


def test_the_diagnoses_name_the_defect() -> None:
    from broken_mirrors import InstantSampleAggregates, LateBuckets

    same = check_broken(InstantSampleAggregates(), profile="strict")
    assert "every method answered the same value" in same.result("metrics.values.order").reason
    late = check_broken(LateBuckets(), profile="strict")
    assert "labelled one window late" in late.result("metrics.values.extremes").reason


def test_every_check_that_can_fail_has_a_broken_mirror() -> None:
    caught = {check for _, check in BROKEN} | {c for _, cs in BROKEN_SEVERAL for c in cs}
    assert caught == set(CHECK_IDS) - NEVER_FAIL


def test_random_values_are_wrong_data_not_a_break() -> None:
    """Values that change on every call disagree with the raw answer: WARN as StackState."""
    report = check_broken(Noisy())
    assert report.with_status(Status.WARN) == [
        "metrics.values.extremes",
        "metrics.values.order",
        "metrics.values.count-sum",
        "determinism",
    ]
    assert report.ok and "differ" in report.result("determinism").reason
    assert report.result("determinism").level is Level.QUALITY


def test_a_partial_last_window_is_reported_as_a_note() -> None:
    report = check_broken(PartialLastWindow(), profile="strict")
    assert report.with_status(Status.WARN) == ["metrics.edge-buckets"]
    assert report.ok and "cut by endTime" in report.result("metrics.edge-buckets").reason
    assert report.facts["edgeBuckets"] == {"firstCut": True, "lastCut": True}


def test_error_bodies_with_status_200_only_warn() -> None:
    report = check_broken(ErrorsWithStatus200())
    assert report.with_status(Status.WARN) == [
        "bad-input.malformed-json",
        "bad-input.missing-query",
    ]
    assert report.with_status(Status.SKIP) == ["api-key.error"]
    assert report.ok


def test_nothing_listening_fails_reachability_and_skips_the_rest() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = run_checks(f"http://127.0.0.1:{port}", timeout=TIMEOUT)
    assert report.with_status(Status.FAIL) == ["reachability"]
    assert report.with_status(Status.SKIP) == list(CHECK_IDS[1:])
    assert report.facts["requests"] == 1


@pytest.mark.parametrize("broken", [AnswersHtml, HangsOnMetrics, AnswersJsonOddities])
def test_garbage_hangs_and_oddities_give_fail_lines_not_crashes(broken: type[Mirror]) -> None:
    report = check_broken(broken())
    assert [r.check for r in report.results] == list(CHECK_IDS)
    assert not report.ok
    assert not [r.reason for r in report.results if "could not interpret" in r.reason]


def test_a_hung_path_is_given_up_on_and_the_others_still_checked() -> None:
    report = check_broken(HangsOnMetrics(), profile="strict")
    assert "not sent: /api/metric did not answer 2 requests within 1 s" in (
        report.result("bad-input.malformed-json").reason
    )
    assert report.result("discovery").status is Status.FAIL
    assert report.result("field-values.paging").status is Status.PASS
    assert report.with_status(Status.FAIL) == [
        "discovery",
        "bad-input.malformed-json",
        "bad-input.missing-query",
    ]
    assert report.result("requests.untyped").reason.startswith("all 3 requests")


#: The sample-style mirror's findings, and why (MIRROR_API.md, "Facts of the sample mirror").
SAMPLE_FINDINGS = {
    "field-values": "value1 and cpu.* offered for the BOOLEAN and NUMBER fields too",
    "field-values.prefix": "value1 and cpu.* whatever the prefix",
    "field-values.paging": "both values whatever limit and offset",
    "metrics.aggregated": "windows of range/50, not bucketSizeMillis",
    "metrics.limit.raw": "ignores limit",
    "metrics.limit.aggregated": "ignores limit",
    "determinism": "new random values on every call",
    "bad-input.malformed-json": "json.loads raises: connection closed, no answer",
    "bad-input.missing-query": "KeyError: the same",
}


def test_sample_style_mirror_works_with_stackstate_and_fails_strict() -> None:
    """StackState works with its own tutorial's sample: no FAIL as StackState, only WARNs
    (wrong or incomplete data, rules StackState does not enforce, notes); strict FAILs
    every rule it breaks."""
    with serve_sample_style() as url:
        report = run_checks(url, api_key="api_key", timeout=5.0)
        strict = run_checks(url, api_key="api_key", timeout=5.0, profile="strict")
    assert report.ok and report.with_status(Status.FAIL) == []
    assert report.with_status(Status.WARN) == list(SAMPLE_FINDINGS)
    assert report.with_status(Status.SKIP) == [
        # its windows are range/50 long: values are compared in windows of the asked size
        "metrics.values.extremes",
        "metrics.values.order",
        "metrics.values.count-sum",
        "metrics.continuation.raw",  # needs an honoured limit
        "metrics.continuation.aggregated",
        "api-key.error",  # it never answers an error
    ]
    quality = {"field-values", "determinism"}
    assert strict.with_status(Status.FAIL) == [c for c in SAMPLE_FINDINGS if c not in quality]
    assert strict.with_status(Status.WARN) == [c for c in SAMPLE_FINDINGS if c in quality]
    assert not strict.ok
    assert report.conditions == "field1=value1"
    assert "limit 16 answered 50 points" in report.result("metrics.limit.raw").reason
    total = len(CHECK_IDS)
    assert report.score_line() == f"{total - 6}/{total} StackState, {total - 13}/{total} strict"


def test_api_key_compared_when_given_and_checked_for_presence_otherwise(
    mirror: RunningMirror,
) -> None:
    wrong = run_checks(mirror.url, api_key="other-key")
    assert wrong.with_status(Status.FAIL) == ["api-key.success", "api-key.error"]
    assert "'api_key', expected 'other-key'" in wrong.result("api-key.success").reason
    unknown = run_checks(mirror.url)
    assert unknown.ok and "['api_key']" in unknown.result("api-key.success").reason


def test_connection_details_are_sent_with_every_request() -> None:
    details = {"token": TOKEN}
    assert check_broken(RequiresToken(), connection_details=details).with_status(
        Status.PASS
    ) == list(CHECK_IDS)
    without = check_broken(RequiresToken())
    assert without.result("test-connection").status is Status.FAIL
    assert "MetricStoreConnectionError" in without.result("test-connection").reason


async def test_run_checks_works_inside_a_running_event_loop() -> None:
    """As in a notebook cell: the checker is blocking, never asyncio.run."""
    with start_mirror(port=0) as running:
        report = run_checks(running.url, api_key=running.api_key)
    assert report.ok and report.with_status(Status.PASS) == list(CHECK_IDS)


def test_html_table_escapes_mirror_text() -> None:
    report = check_broken(AnswersHtml())
    table = report_table(report)
    assert table.html == report._repr_html_() == str(table)
    assert table.html.count("<tr>") == len(CHECK_IDS) + 1  # a header row and one per check
    assert "&lt;html&gt;hello&lt;/html&gt;" in table.html and "<html>hello" not in table.html
    assert "(breaks) " in table.html and f"score {report.score_line()}" in table.html


def test_cli_exit_codes_and_json(mirror: RunningMirror, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    code = main(["check", mirror.url, "--api-key", mirror.api_key, "--json", str(out)])
    printed = capsys.readouterr().out.splitlines()
    assert code == 0
    assert sum(line.startswith("PASS  ") for line in printed) == len(CHECK_IDS)
    total = len(CHECK_IDS)
    assert printed[-1] == f"score: {total}/{total} StackState, {total}/{total} strict"
    saved = json.loads(out.read_text())
    assert saved["ok"] is True and saved["counts"]["PASS"] == len(CHECK_IDS)
    assert saved["profile"] == "stackstate" and saved["score"] == {
        "stackstate": total,
        "strict": total,
    }
    assert [r["check"] for r in saved["results"]] == list(CHECK_IDS)
    with serving(Noisy().app()) as url:
        assert main(["check", url, "--api-key", "wrong"]) == 1
    assert "FAIL  api-key.success" in capsys.readouterr().out


def test_cli_range_in_iso_and_bad_details(mirror: RunningMirror, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.json"
    args = ["--start", "2026-01-01T00:00:00Z", "--end", "2026-01-01T01:00:00", "--json", str(out)]
    assert main(["check", mirror.url, *args]) == 0
    saved = json.loads(out.read_text())
    assert (saved["startTime"], saved["endTime"]) == (T0, T0 + HOUR)
    with pytest.raises(SystemExit) as exited:
        main(["check", mirror.url, "--connection-details", "[1]"])
    assert exited.value.code == 2
    assert main(["check", mirror.url, "--start", str(T0), "--end", str(T0)]) == 2
    assert "range must not be empty" in capsys.readouterr().err


def test_python_dash_m_against_a_broken_mirror() -> None:
    with serving(BROKEN[2][0]().app()) as url:
        done = subprocess.run(
            [sys.executable, "-m", "mirror_kit", "check", url, "--api-key", API_KEY],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert "FAIL  api-key.success" in done.stdout and "-> FAILED" in done.stdout


def _raw(points: list[list[float]], fmt: tuple[str, ...] = ("value", "timestamp")) -> dict:
    telemetry = {"points": points, "dataFormat": list(fmt), "isPartial": False}
    telemetry["_type"] = "RawMetricTelemetry" if len(fmt) == 2 else "AggregatedMetricTelemetry"
    return {"telemetry": telemetry, "_type": "MetricsResponse"}


RAW_QUERY = MetricsQuery(1000, 5000)
AGG_QUERY = MetricsQuery(1000, 5000, aggregation=Aggregation(AggregationMethod.MAX, 1000))
WINDOWS = ("value", "startTimestamp", "endTimestamp")


@pytest.mark.parametrize(
    ("body", "query", "level", "words"),
    [
        (_raw([[1.0, 1000], [2.0, 2000]]), RAW_QUERY, None, ""),
        (_raw([[1000, 1.0]], ("timestamp", "value")), RAW_QUERY, None, ""),
        (_raw([[1.0, 319]]), RAW_QUERY, Level.QUALITY, "681 ms out, seconds rounding?"),
        (_raw([[1.0, 0]]), RAW_QUERY, Level.DATA, "outside [1000, 5000]"),
        (_raw([[1.0, 3000], [2.0, 2000]]), RAW_QUERY, Level.DATA, "not in time order"),
        (_raw([[1.0, 2000], [2.0, 2000]]), RAW_QUERY, Level.QUALITY, "occur twice"),
        (_raw([[1.0, 2000.5]]), RAW_QUERY, Level.BREAKS, "not integer epoch ms"),
        (_raw([[True, 2000]]), RAW_QUERY, Level.BREAKS, "not a number"),
        (_raw([[1.0, 2000]], ("value", "time")), RAW_QUERY, Level.BREAKS, "dataFormat"),
        (_raw([[1.0, 2000]]), AGG_QUERY, Level.BREAKS, "expected 'AggregatedMetricTelemetry'"),
        (_raw([[1.0, 1000, 2000], [1.0, 2000, 3000]], WINDOWS), AGG_QUERY, None, ""),
        (_raw([[1.0, 0, 1000]], WINDOWS), AGG_QUERY, Level.DATA, "windows outside"),
        (_raw([[1.0, 2000, 3000], [1.0, 1000, 2000]], WINDOWS), AGG_QUERY, Level.DATA, "order"),
        (_raw([[1.0, 1000, 2500], [1, 2000, 3500]], WINDOWS), AGG_QUERY, Level.DATA, "1000 long"),
        (_raw([[1.0, 1000, 2000], [1, 1500, 2500]], WINDOWS), AGG_QUERY, Level.DATA, "overlap"),
    ],
)
def test_telemetry_validation(body: dict, query: MetricsQuery, level, words: str) -> None:
    problems = validate.telemetry(body, query)
    if level is None:
        assert problems == []
    else:
        assert problems[0].level is level and words in problems[0].message, problems


def test_given_conditions_are_the_stream_checked(mirror: RunningMirror, capsys) -> None:
    """--condition names the stream instead of discovering one; wrong ones FAIL discovery."""
    given = run_checks(
        mirror.url, api_key="api_key", start=T0, end=T0 + HOUR, conditions={"host": "c-host"}
    )
    assert given.ok and given.conditions == "host=c-host"
    nothing = run_checks(
        mirror.url, api_key="api_key", start=T0, end=T0 + HOUR, conditions={"host": "z-host"}
    )
    assert nothing.result("discovery").status is Status.FAIL
    args = [
        "check",
        mirror.url,
        "--start",
        str(T0),
        "--end",
        str(T0 + HOUR),
        "--condition",
        "host=b-host",
        "--condition",
        "metric=mem.used",
    ]
    assert main(args) == 0
    assert "host=b-host AND metric=mem.used" in capsys.readouterr().out


def test_junit_xml_and_profile_flag(mirror: RunningMirror, tmp_path: Path) -> None:
    from xml.etree import ElementTree

    with serve_sample_style() as url:
        as_stackstate = tmp_path / "stackstate.xml"
        assert main(["check", url, "--timeout", "5", "--junit", str(as_stackstate)]) == 0
        strict = tmp_path / "strict.xml"
        args = ["check", url, "--timeout", "5", "--profile", "strict", "--junit", str(strict)]
        assert main(args) == 1
    suite = ElementTree.parse(as_stackstate).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == str(len(CHECK_IDS))
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == list(CHECK_IDS)
    assert suite.get("failures") == "0" and suite.get("skipped") == "6"
    assert "WARN (data)" in (cases["metrics.limit.raw"].findtext("system-out") or "")
    assert cases["api-key.error"].find("skipped") is not None
    strict_suite = ElementTree.parse(strict).getroot().find("testsuite")
    assert strict_suite is not None
    failure = next(c for c in strict_suite.iter("testcase") if c.get("name") == "metrics.limit.raw")
    assert failure.find("failure") is not None and failure.find("failure").get("type") == "data"
    assert strict_suite.get("failures") == "7"


PLUGIN_PROJECT = """
import pytest
from mirror_kit import start_mirror
from mirror_kit.conformance import CHECK_IDS
from mirror_kit.conformance.pytest_plugin import MirrorTarget

pytest_plugins = ["mirror_kit.conformance.pytest_plugin"]


@pytest.fixture(scope="session")
def mirror_under_check():
    with start_mirror(port=0) as mirror:
        yield MirrorTarget(mirror.url, api_key=WRONG or mirror.api_key)


@pytest.mark.parametrize("check", CHECK_IDS)
def test_mirror(mirror_conformance, check):
    mirror_conformance.assert_check(check)
"""


@pytest.mark.parametrize(("wrong", "failed"), [("None", 0), ("'other-key'", 2)])
def test_pytest_plugin_runs_each_check_as_a_test(tmp_path: Path, wrong: str, failed: int) -> None:
    """A user's own project: one test per check, FAIL where the check FAILs."""
    (tmp_path / "test_my_mirror.py").write_text(
        PLUGIN_PROJECT.replace("WRONG", wrong), encoding="utf-8"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:nbval",
            "-o",
            "addopts=",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    passed = len(CHECK_IDS) - failed
    summary = done.stdout.strip().splitlines()[-1]
    assert f"{passed} passed" in summary, done.stdout[-2000:]
    assert (f"{failed} failed" in summary) == bool(failed), summary
    if failed:
        assert "api-key.success" in done.stdout and "expected 'other-key'" in done.stdout
