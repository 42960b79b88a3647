"""How to reach one Prometheus and read its data: the operator's store declaration,
and the query options a request's connection details may add.

Where a store is, how the mirror authenticates to it and how much of its answers
the mirror accepts are the operator's decision, declared once when the mirror
starts (``PrometheusConfig.from_declaration``, docs/sources.md). A request's
connection details may only tune how data is read (``step``, ``rateWindow``,
``nanInterpretation``, ``hierarchicalValues``, a shorter ``timeout``) and, where
the operator allowed them by name, add request headers (``QueryOptions``).
Parsing is strict about types (a wrong type is a RemoteMirrorError naming the
key). Credentials never appear in a repr or an error message: ``redact``
replaces them, raw and base64-encoded, wherever they could leak.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import httpx

from ...protocol import RemoteMirrorError
from ..base import ConnectionDetails
from ..redaction import REDACTED, Redactor
from ..routing import normal_url

#: Prometheus' own default scrape interval in most setups (and its docs' examples).
DEFAULT_STEP_MS = 15_000
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONCURRENCY = 4
#: The most bytes one Prometheus answer may have, compressed or decompressed. A full
#: query_range page of one series (11,000 points) is about 300 KB.
DEFAULT_MAX_ANSWER_BYTES = 8 << 20
#: The most label names or values one answer may list.
DEFAULT_MAX_FIELD_VALUES = 100_000
#: Connections kept open to one Prometheus (httpx's pool), shared by all requests.
DEFAULT_MAX_CONNECTIONS = 8
#: Connection-details keys that only the operator sets (in the store declaration).
OPERATOR_KEYS = (
    "basicAuth",
    "bearerToken",
    "verifyTls",
    "concurrency",
    "allowHeaders",
    "maxAnswerBytes",
    "maxFieldValues",
    "maxConnections",
    "aggregateInStore",
    "compress",
)
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1_000, 1)


class NanInterpretation(str, Enum):
    """What a NaN sample becomes: dropped (JSON has no NaN) or served as 0."""

    DROP = "DROP"
    ZERO = "ZERO"


def parse_duration_ms(value: Any, key: str) -> int:
    """Milliseconds from a number of seconds (``10``, ``0.5``) or a Prometheus duration
    string (``"10s"``, ``"1m30s"``, ``"500ms"``)."""
    if isinstance(value, bool):
        raise _invalid(key, "must be a number of seconds or a duration such as '15s'")
    if isinstance(value, (int, float)):
        ms = round(float(value) * 1000)
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())) and value.strip():
        ms = sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_MS, strict=True) if n)
    else:
        raise _invalid(key, "must be a number of seconds or a duration such as '15s'")
    if ms < 1:
        raise _invalid(key, "must be at least 1 ms")
    return ms


@dataclass(frozen=True)
class QueryOptions:
    """How one request reads its data: the store's defaults, tuned by its details."""

    step_ms: int
    rate_window_ms: int
    nan_interpretation: NanInterpretation
    hierarchical_values: bool
    timeout_s: float
    headers: tuple[tuple[str, str], ...] = ()
    counter_function: str = "rate"


@dataclass(frozen=True, repr=False)
class PrometheusConfig:
    """Where Prometheus is, how to authenticate, and how to turn series into points.

    ``step_ms`` is the resolution of raw points (query_range's step): set it to the
    scrape interval so that each point is one sample. ``rate_window_ms`` is the
    range of ``rate()`` for ``__counter__`` queries (default: 4 steps).
    ``allow_headers`` names the request headers connection details may set (none by
    default); ``max_answer_bytes`` and ``max_field_values`` bound what the mirror
    accepts from this Prometheus.
    """

    url: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    step_ms: int = DEFAULT_STEP_MS
    rate_window_ms: int | None = None
    nan_interpretation: NanInterpretation = NanInterpretation.ZERO  # StackState's default
    counter_function: str = "rate"  # or "increase"; see promql
    hierarchical_values: bool = False
    verify_tls: bool = True
    concurrency: int = DEFAULT_CONCURRENCY
    allow_headers: frozenset[str] = frozenset()
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    max_field_values: int = DEFAULT_MAX_FIELD_VALUES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: let Prometheus compute aggregated windows where it gives the kit's numbers
    aggregate_in_store: bool = True
    #: ask for gzip answers (``compress = false`` for a store on loopback or a LAN)
    compress: bool = True

    def __post_init__(self) -> None:
        url = _parse_url(self.url)
        if url.username or url.password:  # credentials in the URL: move them to basic auth
            object.__setattr__(self, "username", self.username or url.username)
            object.__setattr__(self, "password", self.password or url.password)
            url = url.copy_with(username=None, password=None)
        object.__setattr__(self, "url", str(url).rstrip("/"))
        object.__setattr__(self, "nan_interpretation", NanInterpretation(self.nan_interpretation))
        object.__setattr__(self, "allow_headers", frozenset(h.lower() for h in self.allow_headers))
        positive = (
            self.timeout_s,
            self.step_ms,
            self.concurrency,
            self.max_answer_bytes,
            self.max_field_values,
            self.max_connections,
        )
        if min(positive) <= 0:
            raise ValueError(
                "timeout, step, concurrency, maxAnswerBytes, maxFieldValues and "
                "maxConnections must be positive"
            )
        secrets = [self.password, self.bearer_token, *(v for _, v in self.headers)]
        basic = None if self.username is None else (self.username, self.password or "")
        object.__setattr__(self, "_redactor", Redactor([s for s in secrets if s], basic))
        defaults = QueryOptions(
            self.step_ms,
            self.effective_rate_window_ms,
            self.nan_interpretation,
            self.hierarchical_values,
            self.timeout_s,
            counter_function=self.counter_function,
        )
        object.__setattr__(self, "_defaults", defaults)

    @property
    def effective_rate_window_ms(self) -> int:
        return self.rate_window_ms if self.rate_window_ms is not None else 4 * self.step_ms

    @property
    def shown_url(self) -> str:
        """The URL as errors show it: no credentials, no query string."""
        return str(httpx.URL(self.url).copy_with(query=None, fragment=None))

    @property
    def auth(self) -> httpx.Auth | None:
        if self.username is not None:
            return httpx.BasicAuth(self.username, self.password or "")
        return None

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return headers

    def redact(self, text: str) -> str:
        """``text`` with every credential (raw, or as basic auth's base64) replaced by
        ``***``, and bearer tokens, URL userinfo and query strings hidden."""
        redactor: Redactor = self._redactor  # type: ignore[attr-defined]
        return redactor(text)

    def defaults(self) -> QueryOptions:
        """The query options of a request that tunes none."""
        defaults: QueryOptions = self._defaults  # type: ignore[attr-defined]
        return defaults

    def options(self, details: ConnectionDetails) -> QueryOptions:
        """The query options for a request with these connection details.

        Keys only the operator may set are refused (400) rather than ignored, so a
        form that expects them to work learns that they do not.
        """
        if not any(key in details for key in _REQUEST_KEYS):
            return self.defaults()
        refused = [key for key in OPERATOR_KEYS if key in details]
        if refused:
            raise _invalid(
                refused[0],
                "is set by the mirror's operator in the store's declaration, "
                "not in connection details",
            )
        step = parse_duration_ms(details["step"], "step") if "step" in details else self.step_ms
        if "rateWindow" in details:
            rate_window = parse_duration_ms(details["rateWindow"], "rateWindow")
        elif "step" in details and self.rate_window_ms is None:
            rate_window = 4 * step
        else:
            rate_window = self.effective_rate_window_ms
        nan = _nan_of(details)
        return QueryOptions(
            step,
            rate_window,
            self.nan_interpretation if nan is None else nan,
            _flag(details, "hierarchicalValues", self.hierarchical_values),
            min(self.timeout_s, _timeout_s(details) or self.timeout_s),
            self._allowed_headers(details),
            _counter_function(details.get("counterFunction", self.counter_function)),
        )

    def _allowed_headers(self, details: ConnectionDetails) -> tuple[tuple[str, str], ...]:
        if "headers" not in details:
            return ()
        headers = _string_map(details["headers"], "headers")
        refused = sorted(k for k in headers if k.lower() not in self.allow_headers)
        if refused:
            allowed = ", ".join(sorted(self.allow_headers)) or "none"
            raise _invalid(
                "headers",
                f"may not set {refused[0]!r}: the operator allows {allowed} for this store",
            )
        return tuple(headers.items())

    def __repr__(self) -> str:
        parts = [f"url={self.shown_url!r}"]
        if self.username is not None:
            parts.append(f"basicAuth=(username={self.username!r}, password={REDACTED})")
        if self.bearer_token:
            parts.append(f"bearerToken={REDACTED}")
        if self.headers:
            shown = ", ".join(f"{k!r}: {REDACTED}" for k, _ in self.headers)
            parts.append(f"headers={{{shown}}}")
        parts += [
            f"timeout={self.timeout_s:g}s",
            f"step={self.step_ms}ms",
            f"rateWindow={self.effective_rate_window_ms}ms",
            f"nanInterpretation={self.nan_interpretation.value}",
        ]
        return f"PrometheusConfig({', '.join(parts)})"

    @classmethod
    def from_declaration(cls, declaration: Mapping[str, Any]) -> PrometheusConfig:
        """The config an operator's store declaration describes (docs/sources.md).

        The keys are those of the kit's earlier connection details, plus the
        operator-only ``allowHeaders``, ``maxAnswerBytes``, ``maxFieldValues`` and
        ``maxConnections``. Also accepts StackState's own Prometheus mirror's keys
        (``host`` + ``port``, ``requestTimeout`` in ms, ``nan_interpretation``).
        """
        options: dict[str, Any] = {"url": declared_url(declaration)}
        timeout = _timeout_s(declaration)
        if timeout is not None:
            options["timeout_s"] = timeout
        options.update(_credentials(declaration))
        if "step" in declaration:
            options["step_ms"] = parse_duration_ms(declaration["step"], "step")
        if "counterFunction" in declaration:
            options["counter_function"] = _counter_function(declaration["counterFunction"])
        if "rateWindow" in declaration:
            options["rate_window_ms"] = parse_duration_ms(declaration["rateWindow"], "rateWindow")
        nan = _nan_of(declaration)
        if nan is not None:
            options["nan_interpretation"] = nan
        options["hierarchical_values"] = _flag(declaration, "hierarchicalValues", False)
        options["verify_tls"] = _flag(declaration, "verifyTls", True)
        options["aggregate_in_store"] = _flag(declaration, "aggregateInStore", True)
        if "compress" in declaration:
            options["compress"] = _flag(declaration, "compress", True)
        for key, name in _COUNTS:
            if key in declaration:
                options[name] = int(_positive_number(declaration[key], key))
        if "allowHeaders" in declaration:
            allowed = _strings(declaration["allowHeaders"], "allowHeaders")
            options["allow_headers"] = frozenset(allowed)
        return cls(**options)


#: Keys that make a request's options differ from the store's defaults.
_REQUEST_KEYS = (
    "step",
    "rateWindow",
    "counterFunction",
    "nanInterpretation",
    "nan_interpretation",
    "hierarchicalValues",
    "timeout",
    "requestTimeout",
    "request_timeout_seconds",
    "headers",
    *OPERATOR_KEYS,
)
_COUNTS = (
    ("concurrency", "concurrency"),
    ("maxAnswerBytes", "max_answer_bytes"),
    ("maxFieldValues", "max_field_values"),
    ("maxConnections", "max_connections"),
)


def _invalid(key: str, problem: str) -> RemoteMirrorError:
    return RemoteMirrorError("Invalid connection details", f'"{key}" {problem}')


def _parse_url(text: str) -> httpx.URL:
    """An http(s) URL with a host and a valid port; a RemoteMirrorError otherwise."""
    try:
        normal_url(text)
    except ValueError as error:
        raise _invalid("url", str(error)) from None
    return httpx.URL(text)


def declared_url(details: Mapping[str, Any]) -> str:
    """The base URL that ``url``, or ``host`` + ``port``, describe (http, port 9090 by
    default for ``host``); a RemoteMirrorError naming the key when they describe none."""
    url = details.get("url")
    if url is None and "host" in details:
        host, port = details["host"], details.get("port", 9090)
        if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
            raise _invalid("host", "must be a host name and port a number")
        url = f"http://{host}:{port}"
    if not isinstance(url, str) or not url.strip():
        raise _invalid("url", 'is required: the Prometheus base URL, e.g. "http://127.0.0.1:9090"')
    _parse_url(url.strip())
    return url.strip()


def _timeout_s(details: Mapping[str, Any]) -> float | None:
    """Seconds from ``timeout`` (s), ``requestTimeout`` (ms, StackState's Prometheus
    mirror) or ``request_timeout_seconds`` (the production peer); None without them."""
    if "timeout" in details:
        return _positive_number(details["timeout"], "timeout")
    if "requestTimeout" in details:
        return _positive_number(details["requestTimeout"], "requestTimeout") / 1000.0
    if "request_timeout_seconds" in details:
        return _positive_number(details["request_timeout_seconds"], "request_timeout_seconds")
    return None


def _nan_of(details: Mapping[str, Any]) -> NanInterpretation | None:
    nan = details.get("nanInterpretation", details.get("nan_interpretation"))
    return None if nan is None else _nan(nan)


def _strings(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(key, "must be a list of strings")
    return value


def _positive_number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise _invalid(key, "must be a positive number")
    return float(value)


def _flag(details: ConnectionDetails, key: str, default: bool) -> bool:
    value = details.get(key, default)
    if not isinstance(value, bool):
        raise _invalid(key, "must be true or false")
    return value


def _nan(value: Any) -> NanInterpretation:
    if not isinstance(value, str):
        raise _invalid("nanInterpretation", 'must be "DROP" or "ZERO"')
    try:
        return NanInterpretation(value.upper())
    except ValueError:
        raise _invalid("nanInterpretation", 'must be "DROP" or "ZERO"') from None


def _counter_function(value: Any) -> str:
    if value not in ("rate", "increase"):
        raise _invalid("counterFunction", 'must be "rate" or "increase"')
    return str(value)


def _string_map(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _invalid(key, "must be an object of strings")
    return dict(value)


def _credentials(details: ConnectionDetails) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "basicAuth" in details:
        auth = _string_map(details["basicAuth"], "basicAuth")
        if "username" not in auth:
            raise _invalid("basicAuth", 'needs "username" (and "password")')
        out["username"], out["password"] = auth["username"], auth.get("password", "")
    if "bearerToken" in details:
        token = details["bearerToken"]
        if not isinstance(token, str) or not token:
            raise _invalid("bearerToken", "must be a non-empty string")
        out["bearer_token"] = token
    if "headers" in details:
        out["headers"] = tuple(_string_map(details["headers"], "headers").items())
    return out
