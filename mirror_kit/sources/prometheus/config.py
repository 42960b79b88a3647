"""How to reach one Prometheus and read its data, parsed from connection details.

The user types these into StackState's Mirror source form ("Connection details
JSON"); docs/sources.md lists every key. Parsing is strict about types (a wrong
type is a RemoteMirrorError naming the key, so Test Connection shows it) and
ignores unknown keys (``source`` is the router's). Credentials never appear in a
repr or an error message: ``redact`` replaces them wherever they could leak.
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

#: Prometheus' own default scrape interval in most setups (and its docs' examples).
DEFAULT_STEP_MS = 15_000
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONCURRENCY = 4
REDACTED = "***"

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


@dataclass(frozen=True, repr=False)
class PrometheusConfig:
    """Where Prometheus is, how to authenticate, and how to turn series into points.

    ``step_ms`` is the resolution of raw points (query_range's step): set it to the
    scrape interval so that each point is one sample. ``rate_window_ms`` is the
    range of ``rate()`` for ``__counter__`` queries (default: 4 steps).
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

    def __post_init__(self) -> None:
        url = httpx.URL(self.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise _invalid("url", "must be an http:// or https:// URL with a host")
        if url.username or url.password:  # credentials in the URL: move them to basic auth
            object.__setattr__(self, "username", self.username or url.username)
            object.__setattr__(self, "password", self.password or url.password)
            url = url.copy_with(username=None, password=None)
        object.__setattr__(self, "url", str(url).rstrip("/"))
        object.__setattr__(self, "nan_interpretation", NanInterpretation(self.nan_interpretation))
        if self.timeout_s <= 0 or self.step_ms < 1 or self.concurrency < 1:
            raise ValueError("timeout_s, step_ms and concurrency must be positive")

    @property
    def effective_rate_window_ms(self) -> int:
        return self.rate_window_ms if self.rate_window_ms is not None else 4 * self.step_ms

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

    def secrets(self) -> list[str]:
        """Every credential value, longest first (so no secret is half-replaced)."""
        values = [self.password, self.bearer_token, *(v for _, v in self.headers)]
        return sorted({v for v in values if v}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every credential replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, REDACTED)
        return text

    def __repr__(self) -> str:
        parts = [f"url={self.url!r}"]
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
    def from_details(cls, details: ConnectionDetails) -> PrometheusConfig:
        """The config the Mirror source form's connection details describe.

        Also accepts the keys of StackState's own Prometheus mirror (``host`` +
        ``port``, ``requestTimeout`` in ms, ``nan_interpretation``) so a form written
        for it works here too.
        """
        options: dict[str, Any] = {"url": _url(details)}
        if "timeout" in details:
            options["timeout_s"] = _positive_number(details["timeout"], "timeout")
        elif "requestTimeout" in details:
            options["timeout_s"] = _positive_number(details["requestTimeout"], "requestTimeout")
            options["timeout_s"] /= 1000.0
        options.update(_credentials(details))
        if "step" in details:
            options["step_ms"] = parse_duration_ms(details["step"], "step")
        if "counterFunction" in details:
            options["counter_function"] = _counter_function(details["counterFunction"])
        if "rateWindow" in details:
            options["rate_window_ms"] = parse_duration_ms(details["rateWindow"], "rateWindow")
        nan = details.get("nanInterpretation", details.get("nan_interpretation"))
        if nan is not None:
            options["nan_interpretation"] = _nan(nan)
        options["hierarchical_values"] = _flag(details, "hierarchicalValues", False)
        options["verify_tls"] = _flag(details, "verifyTls", True)
        if "concurrency" in details:
            options["concurrency"] = int(_positive_number(details["concurrency"], "concurrency"))
        return cls(**options)


def _invalid(key: str, problem: str) -> RemoteMirrorError:
    return RemoteMirrorError("Invalid connection details", f'"{key}" {problem}')


def _url(details: ConnectionDetails) -> str:
    url = details.get("url")
    if url is None and "host" in details:
        host, port = details["host"], details.get("port", 9090)
        if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
            raise _invalid("host", "must be a host name and port a number")
        url = f"http://{host}:{port}"
    if not isinstance(url, str) or not url.strip():
        raise _invalid("url", 'is required: the Prometheus base URL, e.g. "http://127.0.0.1:9090"')
    try:
        httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as error:
        raise _invalid("url", f"is not a URL ({error})") from None
    return url.strip()


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
    try:
        return NanInterpretation(str(value).upper())
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
