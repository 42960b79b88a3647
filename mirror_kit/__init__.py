"""mirror-kit: a faithful StackState Mirror API server, a client, and a notebook tutorial.

The names a user needs are here::

    from mirror_kit import start_mirror, MirrorClient

    mirror = start_mirror(port=0)            # serves the synthetic catalog
    client = MirrorClient(mirror.url, api_key=mirror.api_key)
    client.metrics(host="a-host", metric="cpu.user")
    mirror.stop()

They load on first use (PEP 562): ``import mirror_kit.client`` or
``import mirror_kit.conformance`` must not pull in aiohttp's server or any source,
because the client and the checker are meant for mirrors written in any language.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .client import (
        ApiKeyMismatchError,
        AsyncMirrorClient,
        MetricSeries,
        MirrorClient,
        MirrorClientError,
        MirrorUnreachableError,
    )
    from .runtime import PortInUseError, RunningMirror, running_mirrors, start_mirror, stop_all
    from .server import ServerSettings, create_app
    from .service import Limits
    from .sources import SeriesShape, SyntheticSource, TelemetrySource, Wave

__version__ = "0.1.0"

#: Public name → the submodule that defines it.
_HOMES = {
    "ApiKeyMismatchError": ".client",
    "AsyncMirrorClient": ".client",
    "MetricSeries": ".client",
    "MirrorClient": ".client",
    "MirrorClientError": ".client",
    "MirrorUnreachableError": ".client",
    "PortInUseError": ".runtime",
    "RunningMirror": ".runtime",
    "running_mirrors": ".runtime",
    "start_mirror": ".runtime",
    "stop_all": ".runtime",
    "ServerSettings": ".server",
    "create_app": ".server",
    "Limits": ".service",
    "SeriesShape": ".sources",
    "SyntheticSource": ".sources",
    "TelemetrySource": ".sources",
    "Wave": ".sources",
}

__all__ = [  # written out for linters and type checkers; test_layering checks it matches
    "ApiKeyMismatchError",
    "AsyncMirrorClient",
    "Limits",
    "MetricSeries",
    "MirrorClient",
    "MirrorClientError",
    "MirrorUnreachableError",
    "PortInUseError",
    "RunningMirror",
    "SeriesShape",
    "ServerSettings",
    "SyntheticSource",
    "TelemetrySource",
    "Wave",
    "__version__",
    "create_app",
    "running_mirrors",
    "start_mirror",
    "stop_all",
]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
