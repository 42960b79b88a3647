"""Check any mirror, written in any language, as StackState would use it.

``run_checks(url, api_key=...)`` returns a Report: one result per check (PASS,
WARN, FAIL or SKIP), each naming the part of MIRROR_API.md it verifies and the
request that showed a problem. ``python -m mirror_kit check URL`` prints it;
``report_table(report)`` (or just ``report`` as a cell's value) shows it in a
notebook. See docs/conformance.md.
"""

from .checks import CHECK_IDS, CHECKS
from .report import CheckResult, HtmlTable, Report, Status, report_table
from .runner import run_checks

__all__ = [
    "CHECKS",
    "CHECK_IDS",
    "CheckResult",
    "HtmlTable",
    "Report",
    "Status",
    "report_table",
    "run_checks",
]
