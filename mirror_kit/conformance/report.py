"""The outcome of a conformance run: one result per check, as text, JSON, JUnit XML or HTML.

A report is what a mirror's author reads, so every line says what was checked
(the check id and the part of MIRROR_API.md it verifies), what went wrong, and the
request that showed it, so it can be replayed with ``curl``.

Every finding has a level: **breaks** (StackState fails: an error in the UI, no
stream), **data** (StackState shows wrong or incomplete data, or a rule of the
protocol that StackState itself does not enforce is broken), **quality** (a note).
The profile turns levels into statuses: ``stackstate`` (the default: what StackState
tolerates is a WARN) or ``strict`` (every rule of MIRROR_API.md is a FAIL).
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

#: Shown requests are cut here in text and HTML (the JSON report keeps them whole).
SHOWN_REQUEST_CHARS = 400


class Status(str, Enum):
    """PASS and SKIP never fail a run; WARN flags a deviation StackState tolerates."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


class Level(str, Enum):
    """How much a finding matters to StackState (see the module docstring)."""

    BREAKS = "breaks"
    DATA = "data"
    QUALITY = "quality"


class Profile(str, Enum):
    """How levels become statuses: as StackState behaves, or by the letter of the protocol."""

    STACKSTATE = "stackstate"
    STRICT = "strict"

    def status(self, level: Level) -> Status:
        if level is Level.BREAKS or (level is Level.DATA and self is Profile.STRICT):
            return Status.FAIL
        return Status.WARN


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: ``request`` is the offending request (``POST path body``).

    ``status`` is the verdict under the run's profile; ``level`` is set for a finding
    (FAIL or WARN) and gives the verdict under any profile (``status_in``).
    """

    check: str
    status: Status
    reason: str
    spec: str
    request: str | None = None
    level: Level | None = None

    def status_in(self, profile: Profile) -> Status:
        return self.status if self.level is None else profile.status(self.level)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["status"] = self.status.value
        body["level"] = None if self.level is None else self.level.value
        return body


@dataclass(frozen=True)
class Report:
    """All results of one run against ``url``, in the order the checks are listed."""

    url: str
    start_time: int
    end_time: int
    results: tuple[CheckResult, ...]
    conditions: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    profile: Profile = Profile.STACKSTATE

    @property
    def ok(self) -> bool:
        """True when no check FAILed under the run's profile: the CLI's exit code 0."""
        return not any(r.status is Status.FAIL for r in self.results)

    def score(self, profile: Profile) -> int:
        """Checks that PASS under ``profile``, or hold only notes (WARN) there; SKIPs do not."""
        return sum(r.status_in(profile) in (Status.PASS, Status.WARN) for r in self.results)

    def score_line(self) -> str:
        """``23/25 StackState, 19/25 strict``."""
        total = len(self.results)
        stackstate, strict = self.score(Profile.STACKSTATE), self.score(Profile.STRICT)
        return f"{stackstate}/{total} StackState, {strict}/{total} strict"

    def counts(self) -> dict[str, int]:
        counted = Counter(r.status for r in self.results)
        return {s.value: counted.get(s, 0) for s in Status}

    def with_status(self, status: Status) -> list[str]:
        """The ids of the checks that ended with ``status``."""
        return [r.check for r in self.results if r.status is status]

    def result(self, check: str) -> CheckResult:
        for r in self.results:
            if r.check == check:
                return r
        raise KeyError(check)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "conditions": self.conditions,
            "ok": self.ok,
            "profile": self.profile.value,
            "score": {p.value: self.score(p) for p in Profile},
            "counts": self.counts(),
            "facts": self.facts,
            "results": [r.to_json() for r in self.results],
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    def to_junit(self) -> str:
        """JUnit XML for CI: one testcase per check; FAIL a failure, SKIP skipped, WARN
        a passing case whose note is in ``system-out``."""
        counts = self.counts()
        suite = ElementTree.Element(
            "testsuite",
            name=f"mirror-kit check ({self.profile.value})",
            tests=str(len(self.results)),
            failures=str(counts[Status.FAIL.value]),
            skipped=str(counts[Status.SKIP.value]),
            errors="0",
        )
        ElementTree.SubElement(
            ElementTree.SubElement(suite, "properties"),
            "property",
            name="score",
            value=self.score_line(),
        )
        for r in self.results:
            case = ElementTree.SubElement(
                suite, "testcase", classname="mirror_kit.conformance", name=r.check
            )
            text = r.reason + (f"\nrequest: {r.request}" if r.request else "")
            level = r.level.value if r.level else ""
            if r.status is Status.FAIL:
                failure = ElementTree.SubElement(case, "failure", message=r.reason, type=level)
                failure.text = f"{text}\n[{r.spec}]"
            elif r.status is Status.SKIP:
                ElementTree.SubElement(case, "skipped", message=r.reason)
            elif r.status is Status.WARN:
                ElementTree.SubElement(case, "system-out").text = f"WARN ({level}): {text}"
        suites = ElementTree.Element("testsuites")
        suites.append(suite)
        return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"

    def write_junit(self, path: str | Path) -> None:
        Path(path).write_text(self.to_junit(), encoding="utf-8")

    def lines(self) -> list[str]:
        """The text report: a header, one line per check (plus its request), a summary."""
        width = max((len(r.check) for r in self.results), default=10)
        out = [
            f"mirror-kit check {self.url}",
            f"  range {_utc(self.start_time)} .. {_utc(self.end_time)} "
            f"({self.start_time} .. {self.end_time} ms)",
            f"  conditions found: {self.conditions or '(none)'}",
            f"  profile: {self.profile.value}",
        ]
        for r in self.results:
            shown = r.reason if r.level is None else f"({r.level.value}) {r.reason}"
            out.append(f"{r.status.value:4}  {r.check:{width}}  {shown}  [{r.spec}]")
            if r.request and r.status in (Status.FAIL, Status.WARN):
                out.append(f"{'':4}  {'':{width}}  request: {shorten(r.request)}")
        counts = self.counts()
        summary = ", ".join(f"{counts[s.value]} {s.value}" for s in Status)
        out.append(f"{len(self.results)} checks: {summary} -> {'OK' if self.ok else 'FAILED'}")
        out.append(f"score: {self.score_line()}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        return report_table(self).html


@dataclass(frozen=True)
class HtmlTable:
    """HTML a notebook renders (``_repr_html_``); ``str()`` gives the markup."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


_COLOURS = {
    Status.PASS: "#d4edda",
    Status.WARN: "#fff3cd",
    Status.FAIL: "#f8d7da",
    Status.SKIP: "#e2e3e5",
}


def report_table(report: Report) -> HtmlTable:
    """The report as an HTML table for a notebook cell; every mirror text is escaped."""
    rows = [
        "<tr>"
        f'<td style="background:{_COLOURS[r.status]};font-weight:bold">{r.status.value}</td>'
        f"<td><code>{html.escape(r.check)}</code></td>"
        f"<td>{html.escape(r.reason if r.level is None else f'({r.level.value}) {r.reason}')}"
        + (
            f"<br><small><code>{html.escape(shorten(r.request))}</code></small>"
            if r.request and r.status in (Status.FAIL, Status.WARN)
            else ""
        )
        + f"</td><td><small>{html.escape(r.spec)}</small></td></tr>"
        for r in report.results
    ]
    counts = report.counts()
    caption = html.escape(
        f"{report.url} ({report.profile.value}): "
        + ", ".join(f"{counts[s.value]} {s.value}" for s in Status)
        + f"; score {report.score_line()}"
    )
    return HtmlTable(
        '<table class="mirror-kit-conformance">'
        f"<caption>{caption}</caption>"
        "<thead><tr><th>status</th><th>check</th><th>finding</th>"
        "<th>MIRROR_API.md</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _utc(millis: int) -> str:
    moment = datetime.fromtimestamp(millis / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def shorten(text: str, limit: int = SHOWN_REQUEST_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
