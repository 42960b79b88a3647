"""The HTTP side of a mirror: the aiohttp application and its request log."""

from ..protocol.constants import API_KEY_HEADER
from .app import REQUEST_LOG, SETTINGS, SOURCE, create_app
from .lifecycle import MirrorRunner
from .requestlog import RequestLog, RequestLogEntry
from .settings import DEFAULT_API_KEY, DEFAULT_PORT, Listen, ServerSettings

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_API_KEY",
    "DEFAULT_PORT",
    "REQUEST_LOG",
    "SETTINGS",
    "SOURCE",
    "Listen",
    "MirrorRunner",
    "RequestLog",
    "RequestLogEntry",
    "ServerSettings",
    "create_app",
]
