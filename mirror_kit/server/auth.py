"""Optional shared-secret authentication of requests (off unless a secret is set).

StackState's Mirror plugin sends no credential of its own: the ``X-MIRROR-API-KEY``
header goes the other way (the mirror proves itself to StackState). A mirror that
is reachable from a network, e.g. through a tunnel, therefore serves its data to
anyone who finds the URL. With a secret configured, a request must carry it in
one of two ways, and gets a 403 ``RemoteMirrorError`` otherwise:

* **path token** -- StackState's *Mirror URL* field takes a base URL, and the plugin
  appends the method paths to it. ``http://host:7007/<secret>`` as Mirror URL makes
  StackState call ``/<secret>/api/metric``: this works with StackState as it is.
* **header** -- ``X-Mirror-Auth: <secret>``, for a reverse proxy or tunnel that adds
  the header to what it forwards (the secret then never appears in a URL or a log).

``/healthz`` and ``/openapi.json`` stay open so that probes and tooling work; they
reveal no data. Secrets are compared in constant time.
"""

from __future__ import annotations

import hmac
import re
import secrets

from ..protocol import RemoteMirrorError

AUTH_HEADER = "X-Mirror-Auth"
#: Paths served without the secret (at the root and under the token prefix).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
#: The secret appears in a URL path, so it is limited to URL-unreserved characters.
_SECRET_PATTERN = re.compile(r"[A-Za-z0-9._~-]{16,256}")


def new_secret() -> str:
    """A fresh random secret (32 URL-safe characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def check_secret(secret: str | None) -> None:
    """Raise ValueError for a secret that cannot serve as a path segment or is too short."""
    if secret is not None and not _SECRET_PATTERN.fullmatch(secret):
        raise ValueError(
            "the auth secret must be 16-256 characters of A-Z a-z 0-9 . _ ~ - "
            "(it is used as a URL path segment); e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )


def route_prefixes(secret: str | None) -> tuple[str, ...]:
    """Where the routes are mounted: the root, and ``/<secret>`` when a secret is set."""
    return ("",) if secret is None else ("", f"/{secret}")


def public_path(path: str, secret: str | None) -> str:
    """The path with the token prefix removed: what logs may show."""
    if secret is not None and _has_token(path, secret):
        return path[len(secret) + 1 :]
    return path


def authorize(path: str, header: str | None, secret: str | None) -> None:
    """Raise a 403 RemoteMirrorError unless the request carries the secret (or needs none)."""
    if secret is None or public_path(path, secret) in OPEN_PATHS:
        return
    if _has_token(path, secret):
        return
    if header is not None and _same(header, secret):
        return
    raise RemoteMirrorError(
        "Forbidden: this mirror requires its shared secret",
        f"use the Mirror URL http(s)://<host>:<port>/<secret>, or send the header "
        f"{AUTH_HEADER}: <secret>",
        http_status=403,
    )


def _has_token(path: str, secret: str) -> bool:
    segment, slash, _ = path.removeprefix("/").partition("/")
    return path.startswith("/") and bool(slash) and _same(segment, secret)


def _same(given: str, secret: str) -> bool:
    """Constant-time comparison (a timing side channel must not reveal the secret)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode())
