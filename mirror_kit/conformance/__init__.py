"""Check any mirror, written in any language, as StackState would use it.

``run_checks(url, api_key=..., profile="stackstate"|"strict")`` returns a Report: one
result per check (PASS, WARN, FAIL or SKIP, with the finding's level: breaks, data or
quality), each naming the part of MIRROR_API.md it verifies and the request that
showed a problem. ``mirror_kit.conformance.pytest_plugin`` runs it in a test suite;
``python -m mirror_kit check URL`` prints it;
``report_table(report)`` (or just ``report`` as a cell's value) shows it in a
notebook. See docs/conformance.md.
"""

from .checks import CHECK_IDS, CHECKS
from .report import CheckResult, HtmlTable, Level, Profile, Report, Status, report_table
from .runner import run_checks

__all__ = [
    "CHECKS",
    "CHECK_IDS",
    "CheckResult",
    "HtmlTable",
    "Level",
    "Profile",
    "Report",
    "Status",
    "report_table",
    "run_checks",
]
