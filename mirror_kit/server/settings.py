"""The settings of a mirror, each declared once (mirror_kit/options.py).

``ServerSettings`` is everything about serving that is not the data; ``Listen``
is where ``serve`` listens and with how many processes. ``python -m mirror_kit
serve`` makes a flag of every field and reads ``MIRROR_KIT_*`` for any flag not
given; gunicorn's ``app_factory`` reads the same variables; ``start_mirror`` takes
a ``ServerSettings``. The table in docs/deployment.md lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import options
from ..options import option
from ..service import Limits

DEFAULT_API_KEY = "api_key"
DEFAULT_PORT = 7007
ALL_INTERFACES = "0.0.0.0"


@dataclass(frozen=True)
class ServerSettings:
    """Everything about serving that is not the data: key, caps and timeouts."""

    api_key: str = option(DEFAULT_API_KEY, "--api-key", "the API key the mirror sends StackState")
    #: StackState's requests are under 1 KB; one JSON decode of a body at the cap holds
    #: the GIL (~4.4 ms at 1 MiB, under 1 ms at 256 KiB: docs/hardening.md, "Admission").
    max_body_bytes: int = option(256 << 10, "--max-body", "bytes a request body may have (413)")
    #: under StackState's 15 s UI request timeout
    request_timeout_s: float = option(
        12.0, "--request-timeout", "seconds a request may take to be answered (504)"
    )
    log_size: int = option(500, "--log-size", "requests the request log keeps")
    limits: Limits = field(default_factory=Limits)
    #: Shared secret requests must carry (header or path token, see auth.py); None: off.
    auth_secret: str | None = option(
        None,
        "--auth-secret",
        "require this shared secret as a path token (Mirror URL http://host:port/SECRET) "
        "or X-Mirror-Auth header; prefer the variable: ps shows command lines",
        metavar="SECRET",
    )
    #: aiohttp's default is an hour; nginx's value, longer than common client pools
    #: keep idle connections, so reuse rarely races it.
    keepalive_timeout_s: float = option(
        75.0, "--keepalive-timeout", "seconds an idle connection is kept open"
    )
    body_timeout_s: float = option(
        30.0, "--body-timeout", "seconds a request body may take to arrive (408)"
    )
    send_timeout_s: float = option(
        60.0, "--send-timeout", "seconds an answer may take to be read (then aborted)"
    )
    max_connections: int = option(
        1000,
        "--max-connections",
        "open connections; past it the oldest idle ones are closed, or new ones get a 503 "
        "(lowered to what ulimit -n allows)",
    )
    max_unsent_bytes: int = option(
        32 << 20,
        "--max-unsent-bytes",
        "bytes of answers being written to clients; past it the oldest sends are aborted",
    )
    stop_grace_s: float = option(
        15.0,
        "--stop-grace",
        "seconds requests in progress or queued get to be answered on SIGTERM/Ctrl-C",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServerSettings:
        """The settings ``MIRROR_KIT_*`` variables give (unset ones: the defaults);
        ValueError naming a variable whose value does not parse."""
        return options.build(cls, options.from_env(options.options(cls), environ))


@dataclass(frozen=True)
class Listen:
    """Where ``serve`` listens, and with how many processes."""

    host: str = option("127.0.0.1", "--host", "address to bind")
    bind_all: bool = option(
        False,
        "--bind-all",
        f"bind all interfaces ({ALL_INTERFACES}): anyone who can reach this machine "
        "can then read the data",
    )
    port: int = option(DEFAULT_PORT, "--port", "port to listen on")
    workers: int = option(
        1, "--workers", "serve from N processes under gunicorn (needs mirror-kit[deploy])"
    )

    @property
    def address(self) -> str:
        """The address bound: every interface with ``bind_all``, else ``host``."""
        return ALL_INTERFACES if self.bind_all else self.host
