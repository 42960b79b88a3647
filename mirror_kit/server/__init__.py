"""The HTTP side of a mirror: the aiohttp application and its request log."""

from .app import (
    API_KEY_HEADER,
    DEFAULT_API_KEY,
    DEFAULT_PORT,
    REQUEST_LOG,
    SETTINGS,
    SOURCE,
    ServerSettings,
    create_app,
)
from .lifecycle import MirrorRunner
from .requestlog import RequestLog, RequestLogEntry

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_API_KEY",
    "DEFAULT_PORT",
    "REQUEST_LOG",
    "SETTINGS",
    "SOURCE",
    "MirrorRunner",
    "RequestLog",
    "RequestLogEntry",
    "ServerSettings",
    "create_app",
]
