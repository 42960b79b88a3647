"""StackState's Mirror plugin as a load model, run against any mirror.

``python -m mirror_kit simulate URL`` (see ``command``), or from Python::

    report = asyncio.run(simulate(url, model=LoadModel(), clock=Clock(start_ms=now, speed=60)))
    print("\\n".join(report.lines()))
"""

from .model import Clock, LoadModel
from .report import Consistency, KindStats, Report
from .runner import Progress, discover_series, simulate

__all__ = [
    "Clock",
    "Consistency",
    "KindStats",
    "LoadModel",
    "Progress",
    "Report",
    "discover_series",
    "simulate",
]
