"""Run the conformance checks inside your own mirror project's pytest suite.

In your ``conftest.py``::

    pytest_plugins = ["mirror_kit.conformance.pytest_plugin"]

    @pytest.fixture(scope="session")
    def mirror_under_check():
        with start_my_mirror() as url:           # however your project starts it
            yield MirrorTarget(url, api_key="api_key")

and in a test module::

    from mirror_kit.conformance import CHECK_IDS

    @pytest.mark.parametrize("check", CHECK_IDS)
    def test_mirror_conformance(mirror_conformance, check):
        mirror_conformance.assert_check(check)

Each check becomes one test, FAILing when the check FAILs under the target's profile
(``stackstate`` by default, ``strict`` to hold the mirror to every rule), skipped when
the check SKIPs; WARNs pass with their note as a pytest warning. The suite runs once
per session (about 60 requests), however many tests read it. The plugin is opt-in:
installing mirror-kit registers nothing in other projects' test runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from .report import Profile, Report, Status
from .runner import run_checks


@dataclass(frozen=True)
class MirrorTarget:
    """What ``run_checks`` needs to reach the mirror; see its docstring for each option."""

    url: str
    api_key: str | None = None
    connection_details: Mapping[str, Any] = field(default_factory=dict)
    profile: Profile | str = Profile.STACKSTATE
    options: Mapping[str, Any] = field(default_factory=dict)


class ConformanceWarning(UserWarning):
    """A check's WARN: StackState copes, but the mirror is not what the protocol says."""


@dataclass(frozen=True)
class Conformance:
    """The session's report, with one assertion per check."""

    report: Report

    def assert_check(self, check: str) -> None:
        result = self.report.result(check)
        shown = f"{check}: {result.reason} [{result.spec}]"
        if result.request:
            shown += f"\nrequest: {result.request}"
        if result.status is Status.FAIL:
            pytest.fail(shown, pytrace=False)
        if result.status is Status.SKIP:
            pytest.skip(shown)
        if result.status is Status.WARN:
            warnings.warn(shown, ConformanceWarning, stacklevel=2)

    def assert_ok(self) -> None:
        """Every check at once: fails listing each FAIL."""
        failed = [r for r in self.report.results if r.status is Status.FAIL]
        if failed:
            lines = [f"{r.check}: {r.reason}" for r in failed]
            pytest.fail(f"{self.report.score_line()}\n" + "\n".join(lines), pytrace=False)


@pytest.fixture(scope="session")
def mirror_conformance(mirror_under_check: MirrorTarget) -> Conformance:
    """The conformance report for the project's ``mirror_under_check`` fixture."""
    target = mirror_under_check
    report = run_checks(
        target.url,
        api_key=target.api_key,
        connection_details=target.connection_details,
        profile=target.profile,
        **dict(target.options),
    )
    return Conformance(report)
