"""Telemetry sources: the stores a mirror translates Mirror API calls into."""

from .base import ConnectionDetails, Points, PointWindow, TelemetrySource
from .catalog import CatalogSource, LabeledSeries, SeriesCatalog
from .prometheus import PrometheusConfig, PrometheusSource
from .routing import RoutingSource
from .synthetic import SeriesShape, SyntheticSource, Wave
from .tabular import CsvSource, DataFrameSource, TabularSource, csv_factory

__all__ = [
    "CatalogSource",
    "ConnectionDetails",
    "CsvSource",
    "DataFrameSource",
    "LabeledSeries",
    "PointWindow",
    "Points",
    "PrometheusConfig",
    "PrometheusSource",
    "RoutingSource",
    "SeriesCatalog",
    "SeriesShape",
    "SyntheticSource",
    "TabularSource",
    "TelemetrySource",
    "Wave",
    "csv_factory",
]
