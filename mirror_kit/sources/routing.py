"""Pick the store per request from the Mirror source form's connection details.

StackState sends the form's "Connection details JSON" with every request. One
mirror can therefore serve several stores: ``{"source": "prometheus", "url":
"http://127.0.0.1:9090"}`` asks Prometheus, ``{}`` asks the default source. A
``RoutingSource`` builds the named source from those details with the factory
registered under that name, and keeps the sources it built (keyed by the details'
canonical JSON, so key order does not matter) in a bounded LRU cache: a source
that holds an HTTP connection pool is built once, not once per request.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from ..protocol import (
    FieldDescriptor,
    FieldNamesQuery,
    FieldValueOption,
    FieldValuesQuery,
    MetricsQuery,
    MirrorError,
    RemoteMirrorError,
)
from .base import ConnectionDetails, Points, PointWindow, TelemetrySource

log = logging.getLogger(__name__)

#: The connection-details key naming the store (a contract with the form's users).
SOURCE_KEY = "source"

SourceFactory = Callable[[ConnectionDetails], TelemetrySource]


class RoutingSource(TelemetrySource):
    """A TelemetrySource that delegates each request to the source its details name.

    ``default`` answers requests whose details have no ``source`` key (StackState's
    tutorial sends ``{}``), or whose ``source`` is ``default_name``. Any other name
    is built by ``factories[name](details)``; an unknown name is a RemoteMirrorError
    listing the known ones. At most ``cache_size`` built sources are kept; the least
    recently used is dropped first (requests still using it finish normally).
    """

    def __init__(
        self,
        default: TelemetrySource,
        factories: Mapping[str, SourceFactory],
        *,
        default_name: str = "synthetic",
        cache_size: int = 32,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self.default = default
        self.default_name = default_name
        self.factories = dict(factories)
        self.cache_size = cache_size
        self._built: OrderedDict[str, TelemetrySource] = OrderedDict()

    @property
    def names(self) -> list[str]:
        """Every value ``source`` may take, the default's name first."""
        return [self.default_name, *sorted(n for n in self.factories if n != self.default_name)]

    def blocks(self, connection_details: ConnectionDetails) -> bool:
        """The default source decides for requests it answers; built sources may block."""
        name = connection_details.get(SOURCE_KEY)
        if name is None or name == self.default_name:
            return self.default.blocks(connection_details)
        return True

    def source_for(self, details: ConnectionDetails) -> TelemetrySource:
        """The source these connection details select, built (and cached) if need be."""
        name = details.get(SOURCE_KEY)
        if name is None or name == self.default_name:
            return self.default
        factory = self.factories.get(name) if isinstance(name, str) else None
        if factory is None:
            raise RemoteMirrorError(
                f"Unknown source {name!r} in connection details",
                f'"{SOURCE_KEY}" must be one of {", ".join(map(repr, self.names))} '
                "(or absent for the default)",
            )
        key = _cache_key(details)
        source = self._built.get(key)
        if source is not None:
            self._built.move_to_end(key)
            return source
        source = _build(name, factory, details)
        self._built[key] = source
        while len(self._built) > self.cache_size:
            self._built.popitem(last=False)
        return source

    @property
    def cached(self) -> Sequence[TelemetrySource]:
        """The built sources currently kept, least recently used first."""
        return list(self._built.values())

    async def aclose(self) -> None:
        """Close every built source (and the default) that has an ``aclose``."""
        sources = [*self._built.values(), self.default]
        self._built.clear()
        for source in sources:
            closer = getattr(source, "aclose", None)
            if closer is not None:
                result = closer()
                if inspect.isawaitable(result):
                    await result

    async def test_connection(self, connection_details: ConnectionDetails) -> None:
        await self.source_for(connection_details).test_connection(connection_details)

    async def field_names(
        self, query: FieldNamesQuery, connection_details: ConnectionDetails
    ) -> Sequence[FieldDescriptor]:
        source = self.source_for(connection_details)
        return await source.field_names(query, connection_details)

    async def field_values(
        self, query: FieldValuesQuery, connection_details: ConnectionDetails
    ) -> Sequence[FieldValueOption]:
        source = self.source_for(connection_details)
        return await source.field_values(query, connection_details)

    async def points(
        self, query: MetricsQuery, window: PointWindow, connection_details: ConnectionDetails
    ) -> Points:
        source = self.source_for(connection_details)
        return await source.points(query, window, connection_details)

    def __repr__(self) -> str:
        # Never the details themselves: they may hold credentials.
        return (
            f"<RoutingSource default={self.default_name!r} sources={self.names} "
            f"cached={len(self._built)}/{self.cache_size}>"
        )


def _cache_key(details: ConnectionDetails) -> str:
    """Canonical JSON of the details: equal details in any key order share one source."""
    try:
        return json.dumps(details, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise RemoteMirrorError("Invalid connection details", str(error)) from None


def _build(name: str, factory: SourceFactory, details: ConnectionDetails) -> TelemetrySource:
    """Run a factory; a failure is the user's form being wrong, so say which source."""
    try:
        return factory(details)
    except MirrorError:
        raise
    except (TypeError, ValueError, KeyError, OSError) as error:
        raise RemoteMirrorError(
            f"Invalid connection details for source {name!r}", str(error)
        ) from None
