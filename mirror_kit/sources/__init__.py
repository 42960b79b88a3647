"""Telemetry sources: the stores a mirror translates Mirror API calls into."""

from .base import ConnectionDetails, Points, PointWindow, TelemetrySource
from .catalog import LabeledSeries, SeriesCatalog
from .synthetic import SeriesShape, SyntheticSource, Wave

__all__ = [
    "ConnectionDetails",
    "LabeledSeries",
    "PointWindow",
    "Points",
    "SeriesCatalog",
    "SeriesShape",
    "SyntheticSource",
    "TelemetrySource",
    "Wave",
]
