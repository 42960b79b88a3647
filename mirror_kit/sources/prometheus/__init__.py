"""A TelemetrySource reading a real Prometheus over its HTTP API (see docs/sources.md)."""

from .config import NanInterpretation, PrometheusConfig, parse_duration_ms
from .promql import COUNTER, EXPRESSION, GAUGE, SPECIAL_FIELDS
from .source import PrometheusSource

__all__ = [
    "COUNTER",
    "EXPRESSION",
    "GAUGE",
    "SPECIAL_FIELDS",
    "NanInterpretation",
    "PrometheusConfig",
    "PrometheusSource",
    "parse_duration_ms",
]
