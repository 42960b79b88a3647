"""Prometheus' HTTP API over httpx, with its failures turned into protocol errors.

Why httpx rather than aiohttp's ClientSession: an ``httpx.AsyncClient`` may be
built outside a running event loop (a RoutingSource factory runs wherever the
first request arrives), it carries basic auth, timeouts and TLS settings as plain
constructor arguments, and the kit's own MirrorClient already speaks httpx, so the
kit has one HTTP-client vocabulary.

Error mapping (the Prometheus message is kept, credentials are redacted):

=====================================  ===========================================
Prometheus / transport                 Mirror API error
=====================================  ===========================================
connection refused, DNS, TLS failure   MetricStoreConnectionError
no answer within ``timeout``           MetricStoreConnectionError
401 / 403                              MetricStoreConnectionError (check credentials)
404 (no Prometheus API at that URL)    MetricStoreConnectionError
400 / 422 ``bad_data``, ``execution``  RemoteMirrorError (HTTP 400 from the mirror)
503 ``timeout`` / ``canceled``         RemoteMirrorError (HTTP 504)
other 5xx, a body that is not JSON     RemoteMirrorError (HTTP 502)
=====================================  ===========================================
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from ...protocol import MetricStoreConnectionError, MirrorError, RemoteMirrorError
from .config import PrometheusConfig

log = logging.getLogger("mirror_kit.sources.prometheus")

Params = Sequence[tuple[str, str]]


class PrometheusApi:
    """One Prometheus endpoint. Keeps an httpx client per event loop (connections are
    reused across requests; a client is never used from a loop it was not made on)."""

    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(
                base_url=self.config.url,
                auth=self.config.auth,
                headers=self.config.request_headers(),
                timeout=self.config.timeout_s,
                verify=self.config.verify_tls,
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool (only possible on the loop that opened it)."""
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    async def get(self, path: str, params: Params = ()) -> httpx.Response:
        """GET ``path``; transport failures become MetricStoreConnectionError."""
        cfg = self.config
        try:
            return await self._http().get(path, params=list(params))
        except httpx.TimeoutException as error:
            raise MetricStoreConnectionError(
                f"Prometheus at {cfg.url} did not answer {path} within {cfg.timeout_s:g} s "
                f'({type(error).__name__}); raise "timeout" in the connection details'
            ) from None
        except httpx.TransportError as error:
            reason = cfg.redact(str(error)) or type(error).__name__
            raise MetricStoreConnectionError(
                f"Cannot reach Prometheus at {cfg.url}: {reason}"
            ) from None

    async def data(self, path: str, params: Params = ()) -> Any:
        """The ``data`` of a successful API answer; any failure as a protocol error."""
        response = await self.get(path, params)
        log.debug("GET %s -> %s", path, response.status_code)
        return self.read(path, response)

    def read(self, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        cfg = self.config
        if status in (401, 403):
            raise MetricStoreConnectionError(
                f"Prometheus at {cfg.url} refused the request (HTTP {status}): "
                "check basicAuth, bearerToken or headers in the connection details"
            )
        body = _json(response)
        if status == 404 and body is None:
            raise MetricStoreConnectionError(
                f'No Prometheus HTTP API at {cfg.url} ({path} answered 404): check "url"'
            )
        if body is None:
            snippet = cfg.redact(response.text[:200])
            raise RemoteMirrorError(
                f"Prometheus answered HTTP {status} with a body that is not JSON",
                f"{path}: {snippet!r}",
                http_status=502,
            )
        if status < 300 and body.get("status") == "success":
            return body.get("data")
        raise _api_error(path, status, body, cfg)


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _api_error(path: str, status: int, body: dict[str, Any], cfg: PrometheusConfig) -> MirrorError:
    kind = str(body.get("errorType", "error"))
    message = cfg.redact(str(body.get("error", "")))
    details = f"{kind}: {message} ({path})"
    if status in (400, 422):
        return RemoteMirrorError("Prometheus rejected the query", details, http_status=400)
    if kind in ("timeout", "canceled"):
        return RemoteMirrorError("Prometheus timed out on the query", details, http_status=504)
    return RemoteMirrorError(f"Prometheus failed (HTTP {status})", details, http_status=502)
