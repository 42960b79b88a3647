"""Pick one of the operator's stores per request from the connection details.

StackState sends the Mirror source form's "Connection details JSON" with every
request. Which stores exist is the operator's decision, made when the mirror
starts (``mirror_kit.sources.stores``); the details only *select* among them:

* ``{"source": "<name>"}`` selects the store of that name;
* ``{"url": "http://prom:9090"}``, or StackState's Prometheus mirror's ``{"host":
  "prom", "port": 9090}``, selects the store whose URL is that one (compared
  normalised: scheme and host case, default port, trailing slash);
* with neither, ``{}`` (the tutorial's form) selects the default store.

Anything else (an unknown name, a URL no store has, a name and a URL that
disagree, ``file`` for a store that takes none) is a RemoteMirrorError (400) that
names the stores there are, raised before anything is contacted. So a form
written for another mirror never gets synthetic data and a false "OK" from
Test Connection. Selection reads only these keys: the rest of the details
(``nonce``, options) never makes the mirror build anything anew.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any

import httpx

from ..protocol import (
    FieldDescriptor,
    FieldNamesQuery,
    FieldValueOption,
    FieldValuesQuery,
    MetricsQuery,
    RemoteMirrorError,
)
from ..telemetry import STORE
from .base import ConnectionDetails, Points, PointWindow, TelemetrySource, WindowSpan
from .shaping import Shapeable, shaping_of

log = logging.getLogger(__name__)

#: The connection-details key naming the store (a contract with the form's users).
SOURCE_KEY = "source"
#: Keys that select a store by its address (the kit's ``url``; StackState's own
#: Prometheus mirror's ``host`` and ``port``; the production peer's ``url``).
ADDRESS_KEYS = ("url", "host", "port")
#: The key that picks a file of a CSV store that serves a directory.
FILE_KEY = "file"
#: Connection details nested deeper than this are refused (nobody types more).
MAX_DETAILS_DEPTH = 32
MAX_URL_CHARS = 2048
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The port ``host`` without ``port`` means (Prometheus' own).
DEFAULT_HOST_PORT = 9090


class Store(ABC):
    """One store the operator configured: what answers the requests that select it.

    ``url`` (None for stores without one) is the address connection details may
    name to select it; ``takes_files`` whether its details may name a ``file``.
    """

    kind: str = "store"
    url: str | None = None
    takes_files: bool = False

    @abstractmethod
    async def source(self, connection_details: ConnectionDetails) -> TelemetrySource:
        """The source answering this request (built, off the event loop, if need be)."""

    async def aclose(self) -> None:
        """Release what the store holds (connection pools, worker threads)."""
        return None

    def shapeable(self) -> Shapeable | None:
        """The Shapeable serving this store's series, when they can be reshaped."""
        return None


class FixedStore(Store):
    """A store that is one source, made when the mirror starts (synthetic, Prometheus,
    your own TelemetrySource)."""

    def __init__(self, source: TelemetrySource) -> None:
        self._source = source
        url = getattr(source, "url", None)
        self.url = url if isinstance(url, str) else None
        self.kind = type(source).__name__.removesuffix("Source").lower() or "source"

    async def source(self, connection_details: ConnectionDetails) -> TelemetrySource:
        return self._source

    def shapeable(self) -> Shapeable | None:
        return shaping_of(self._source)

    async def aclose(self) -> None:
        await close_quietly(self._source)


async def close_quietly(thing: Any) -> None:
    """Call ``thing.aclose()`` if it has one; a failure to close is logged, not raised."""
    closer = getattr(thing, "aclose", None)
    if closer is None:
        return
    try:
        result = closer()
        if inspect.isawaitable(result):
            await result
    except Exception:  # closing must never fail a request or a shutdown
        log.warning("closing %s failed", type(thing).__name__, exc_info=True)


class RoutingSource(TelemetrySource):
    """A TelemetrySource that delegates each request to the configured store its
    connection details select (see the module docstring).

    ``stores`` maps names to sources or Stores; ``default`` names the one ``{}``
    selects. A source made once here is shared by every request: one connection
    pool per Prometheus.
    """

    def __init__(
        self, stores: Mapping[str, TelemetrySource | Store], *, default: str = "synthetic"
    ) -> None:
        if default not in stores:
            raise ValueError(f"the default store {default!r} is not among {sorted(stores)}")
        self.stores: dict[str, Store] = {}
        self._names: dict[Store, str] = {}  # for the mirror's own metrics
        self._by_url: dict[str, str] = {}
        for name, store in stores.items():
            if not _NAME.match(name):
                raise ValueError(f"store name {name!r}: letters, digits, '_', '.', '-' only")
            store = store if isinstance(store, Store) else FixedStore(store)
            self.stores[name] = store
            self._names[store] = name
            if store.url is not None:
                key = normal_url(store.url)
                if key in self._by_url:
                    raise ValueError(f"stores {self._by_url[key]!r} and {name!r} have one URL")
                self._by_url[key] = name
        self.default_name = default
        self.default = self.stores[default]

    @property
    def names(self) -> list[str]:
        """Every store's name, the default's first."""
        return [self.default_name, *sorted(n for n in self.stores if n != self.default_name)]

    def select(self, details: ConnectionDetails) -> Store:
        """The store these details select; a RemoteMirrorError (400) for any other."""
        _check_depth(details)
        name = details.get(SOURCE_KEY)
        addressed = any(key in details for key in ADDRESS_KEYS)
        if name is None:
            store = self._store_at(details) if addressed else self.default
        else:
            store = self._named(name)
            if addressed and self._url_names(details) != name:
                raise self._refusal(
                    f"Connection details name store {name!r} and an address that is not its",
                    f'drop "url"/"host" or make them those of {name!r}',
                )
        if FILE_KEY in details and not store.takes_files:
            raise self._refusal(
                f'Connection details name a "{FILE_KEY}", and the store they select takes none',
                f'"{FILE_KEY}" needs "{SOURCE_KEY}" naming a CSV store that serves a directory',
            )
        return store

    def shapeable(self) -> Shapeable | None:
        """The default store's Shapeable, if it has one: ``{}`` details (the tutorial's
        form and the notebook's clients) read the default store, so changing it is what
        they see. Other stores are reached as ``routed.stores[name].shapeable()``."""
        return self.default.shapeable()

    async def source_for(self, details: ConnectionDetails) -> TelemetrySource:
        """The source answering a request with these details."""
        store = self.select(details)
        STORE.set(self._names[store])  # what the store's calls are counted under
        return await store.source(details)

    def _named(self, name: Any) -> Store:
        store = self.stores.get(name) if isinstance(name, str) else None
        if store is None:
            shown = repr(name) if isinstance(name, str) and len(name) <= 64 else "given"
            raise self._refusal(f"Unknown store {shown} in connection details")
        return store

    def _url_names(self, details: ConnectionDetails) -> str | None:
        """The name of the store at the details' address, if any."""
        return next(filter(None, map(self._by_url.get, address_keys(details))), None)

    def _store_at(self, details: ConnectionDetails) -> Store:
        name = self._url_names(details)
        if name is None:
            raise self._refusal("No store of this mirror has the address in the connection details")
        return self.stores[name]

    def _refusal(self, summary: str, hint: str = "") -> RemoteMirrorError:
        """A 400 naming what is allowed (store names only: their URLs are the operator's)."""
        listed = ", ".join(f"{n!r} ({self.stores[n].kind})" for n in self.names)
        allowed = (
            f'this mirror serves {listed}: select one with "{SOURCE_KEY}", by a URL equal '
            f"to a store's, or send {{}} for {self.default_name!r}"
        )
        return RemoteMirrorError(summary, f"{hint}; {allowed}" if hint else allowed)

    async def aclose(self) -> None:
        """Close every store (connection pools, worker threads)."""
        await asyncio.gather(*(store.aclose() for store in self.stores.values()))

    async def test_connection(self, connection_details: ConnectionDetails) -> None:
        source = await self.source_for(connection_details)
        await source.test_connection(connection_details)

    async def field_names(
        self, query: FieldNamesQuery, connection_details: ConnectionDetails
    ) -> Sequence[FieldDescriptor]:
        source = await self.source_for(connection_details)
        return await source.field_names(query, connection_details)

    async def field_values(
        self, query: FieldValuesQuery, connection_details: ConnectionDetails
    ) -> Sequence[FieldValueOption]:
        source = await self.source_for(connection_details)
        return await source.field_values(query, connection_details)

    async def points(
        self, query: MetricsQuery, window: PointWindow, connection_details: ConnectionDetails
    ) -> Points:
        source = await self.source_for(connection_details)
        return await source.points(query, window, connection_details)

    async def windows(
        self, query: MetricsQuery, span: WindowSpan, connection_details: ConnectionDetails
    ) -> Points | None:
        source = await self.source_for(connection_details)
        return await source.windows(query, span, connection_details)

    def __repr__(self) -> str:
        # Never the details or URLs: they may hold credentials.
        return f"<RoutingSource default={self.default_name!r} stores={self.names}>"


def normal_url(text: str) -> str:
    """A URL in the form store addresses are compared in: lower-case scheme and host,
    the port always given, no credentials, query or trailing slash. ValueError for
    anything that is not an http(s) URL with a host and a valid port."""
    if len(text) > MAX_URL_CHARS:
        raise ValueError(f"is longer than {MAX_URL_CHARS} characters")
    try:
        url = httpx.URL(text.strip())
    except Exception:  # httpx raises several types for malformed URLs
        raise ValueError("is not a URL") from None
    if url.scheme not in _DEFAULT_PORTS or not url.host:
        raise ValueError("is not an http:// or https:// URL with a host")
    port = url.port if url.port is not None else _DEFAULT_PORTS[url.scheme]
    if not 0 < port < 65536:
        raise ValueError(f"has port {port}, outside 1-65535")
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host.lower()}:{port}{url.path.rstrip('/')}"


def address_keys(details: ConnectionDetails) -> list[str]:
    """The normal URLs the details' ``url`` or ``host``/``port`` may mean; a
    RemoteMirrorError (400) naming the key when they are malformed."""
    url, host, port = (details.get(key) for key in ADDRESS_KEYS)
    if url is not None:
        if not isinstance(url, str):
            raise RemoteMirrorError("Invalid connection details", '"url" must be a string')
        try:
            return [normal_url(url)]
        except ValueError as error:
            raise RemoteMirrorError("Invalid connection details", f'"url" {error}') from None
    if not isinstance(host, str) or not host or len(host) > 253 or "/" in host or "@" in host:
        raise RemoteMirrorError(
            "Invalid connection details", '"host" must be a host name (with "port" a number)'
        )
    port = DEFAULT_HOST_PORT if port is None else port
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise RemoteMirrorError("Invalid connection details", '"port" must be 1-65535')
    try:
        return [normal_url(f"{scheme}://{host}:{port}") for scheme in ("http", "https")]
    except ValueError as error:
        raise RemoteMirrorError("Invalid connection details", f'"host" {error}') from None


#: What JSON holds besides objects and arrays (bool is an int).
_LEAVES = (str, int, float, type(None))


def _check_depth(details: Any) -> None:
    """Refuse details nested deeper than MAX_DETAILS_DEPTH (iteratively: no recursion).

    Scalars are skipped at C speed (``map(isinstance, ...)``): a caller's details may
    be a list of 90,000 strings, and each request selects a store.
    """
    stack: list[tuple[Any, int]] = [(details, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DETAILS_DEPTH:
            raise RemoteMirrorError(
                "Invalid connection details",
                f"nested more than {MAX_DETAILS_DEPTH} levels deep",
            )
        if not all(map(isinstance, children, repeat(_LEAVES))):
            stack.extend((v, depth + 1) for v in children if not isinstance(v, _LEAVES))
