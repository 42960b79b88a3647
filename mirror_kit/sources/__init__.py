"""Telemetry sources: the stores a mirror translates Mirror API calls into."""

from .base import ConnectionDetails, Points, PointWindow, TelemetrySource, WindowSpan
from .catalog import CatalogSource, LabeledSeries, SeriesCatalog
from .prometheus import PrometheusConfig, PrometheusSource
from .routing import FixedStore, RoutingSource, Store
from .shaping import ExposesShaping, Shapeable, shaping_of
from .stores import StoreConfig, StoreDeclaration
from .synthetic import SeriesShape, SyntheticSource, Wave
from .tabular import CsvSource, CsvStore, DataFrameSource, TabularSource

__all__ = [
    "CatalogSource",
    "ConnectionDetails",
    "CsvSource",
    "CsvStore",
    "DataFrameSource",
    "ExposesShaping",
    "FixedStore",
    "LabeledSeries",
    "PointWindow",
    "Points",
    "PrometheusConfig",
    "PrometheusSource",
    "RoutingSource",
    "SeriesCatalog",
    "SeriesShape",
    "Shapeable",
    "Store",
    "StoreConfig",
    "StoreDeclaration",
    "SyntheticSource",
    "TabularSource",
    "TelemetrySource",
    "Wave",
    "WindowSpan",
    "shaping_of",
]
