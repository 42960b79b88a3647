"""mirror-kit: a faithful StackState Mirror API server, a client, and a notebook tutorial.

The names a user needs are here::

    from mirror_kit import start_mirror, MirrorClient

    mirror = start_mirror(port=0)            # serves the synthetic catalog
    client = MirrorClient(mirror.url, api_key=mirror.api_key)
    client.metrics(host="a-host", metric="cpu.user")
    mirror.stop()
"""

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

__all__ = [
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
