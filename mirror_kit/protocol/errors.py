"""The Mirror API's error bodies, as Python exceptions.

Every failure a mirror reports travels as one of four JSON bodies (MIRROR_API.md,
"Errors"). Raising them as exceptions lets any layer (parsing, a source, the
aggregation) stop a request with the exact body StackState expects, and lets the
client raise the same classes when it reads such a body back.

``http_status`` is this kit's choice (the guide names none); the server uses it:

=============================  ======  ==========================================
error                          status  when
=============================  ======  ==========================================
RemoteMirrorError              400     the request is malformed (default)
RemoteMirrorError              404/405 unknown path / method other than POST
RemoteMirrorError              413     body larger than the configured cap
RemoteMirrorError              500     an unexpected failure inside the mirror
MetricNotFoundError            404     conditions select no series
UnsupportedFieldTypeError      400     a value's type does not fit the field
MetricStoreConnectionError     502     the backing store cannot be reached
=============================  ======  ==========================================
"""

from __future__ import annotations

from typing import Any, ClassVar


class MirrorError(Exception):
    """Base of the protocol's error bodies."""

    type_name: ClassVar[str] = ""
    http_status: int = 500

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def from_json(body: dict[str, Any], http_status: int = 500) -> MirrorError:
        """Rebuild the exception a mirror's error body describes (used by the client)."""
        error = MirrorError._from_body(body, http_status)
        error.http_status = http_status
        return error

    @staticmethod
    def _from_body(body: dict[str, Any], http_status: int) -> MirrorError:
        kind = body.get("_type")
        if kind == MetricStoreConnectionError.type_name:
            return MetricStoreConnectionError(str(body.get("details", "")))
        if kind == MetricNotFoundError.type_name:
            return MetricNotFoundError(str(body.get("metric", "")), str(body.get("details", "")))
        if kind == UnsupportedFieldTypeError.type_name:
            return UnsupportedFieldTypeError(str(body.get("mirrorType", "")))
        return RemoteMirrorError(
            str(body.get("summary", "")), str(body.get("details", "")), http_status=http_status
        )


class RemoteMirrorError(MirrorError):
    """Anything else: a bad request or a failure inside the mirror."""

    type_name = "RemoteMirrorError"

    def __init__(self, summary: str, details: str = "", *, http_status: int = 400) -> None:
        super().__init__(summary if not details else f"{summary}: {details}")
        self.summary = summary
        self.details = details or summary
        self.http_status = http_status

    def to_json(self) -> dict[str, Any]:
        return {"_type": self.type_name, "summary": self.summary, "details": self.details}


class MetricNotFoundError(MirrorError):
    """The query's conditions (or ``metricField``) select nothing the store has."""

    type_name = "MetricNotFoundError"
    http_status = 404

    def __init__(self, metric: str, details: str = "Metric is not configured.") -> None:
        super().__init__(f"{metric}: {details}")
        self.metric = metric
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"_type": self.type_name, "metric": self.metric, "details": self.details}


class UnsupportedFieldTypeError(MirrorError):
    """A value or field type the mirror cannot use where it was sent."""

    type_name = "UnsupportedFieldTypeError"
    http_status = 400

    def __init__(self, mirror_type: str) -> None:
        super().__init__(f"unsupported field type {mirror_type}")
        self.mirror_type = mirror_type

    def to_json(self) -> dict[str, Any]:
        return {"_type": self.type_name, "mirrorType": self.mirror_type}


class MetricStoreConnectionError(MirrorError):
    """The store behind the mirror cannot be reached."""

    type_name = "MetricStoreConnectionError"
    http_status = 502

    def __init__(self, details: str = "Unable to connect to remote metrics store.") -> None:
        super().__init__(details)
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"_type": self.type_name, "details": self.details}


def invalid(field: str, problem: str) -> RemoteMirrorError:
    """The error for a request field that is missing or malformed; names the field."""
    return RemoteMirrorError(f"Invalid request: {field} {problem}")
