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

from typing import Any, ClassVar, Union

import msgspec


class MirrorError(Exception):
    """Base of the protocol's error bodies; ``members`` declares each one's body."""

    type_name: ClassVar[str] = ""
    #: The body's members (all strings), in the order the constructor takes them.
    members: ClassVar[tuple[str, ...]] = ()
    #: The body's wire type, declared from ``members`` (OpenAPI reads it too).
    wire: ClassVar[type[msgspec.Struct]]
    http_status: int = 500

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "members" not in cls.__dict__:  # a subclass of a body (admission's Busy) is
            return  # the same body: the protocol has four, a mirror cannot add any
        cls.type_name = cls.__name__
        fields = [(name, str, "") for name in cls.members]
        cls.wire = msgspec.defstruct(
            cls.__name__, fields, tag_field="_type", tag=True, rename="camel", frozen=True
        )
        cls.wire.__doc__ = cls.__doc__

    def to_json(self) -> dict[str, Any]:
        return msgspec.to_builtins(self.wire(*(getattr(self, m) for m in self.members)))

    @staticmethod
    def from_json(body: dict[str, Any], http_status: int = 500) -> MirrorError:
        """Rebuild the exception a mirror's error body describes (used by the client).

        A body of another ``_type``, or with members that are not strings, is read as
        a RemoteMirrorError with what text it has.
        """
        try:
            wire = msgspec.convert(body, ERROR_BODY)
            error = ERRORS[wire.__struct_config__.tag](*msgspec.structs.astuple(wire))
        except msgspec.ValidationError:
            error = RemoteMirrorError(str(body.get("summary", "")), str(body.get("details", "")))
        error.http_status = http_status
        return error


class MetricStoreConnectionError(MirrorError):
    """The store behind the mirror cannot be reached."""

    members = ("details",)
    http_status = 502

    def __init__(self, details: str = "Unable to connect to remote metrics store.") -> None:
        super().__init__(details)
        self.details = details


class MetricNotFoundError(MirrorError):
    """The query's conditions (or ``metricField``) select nothing the store has."""

    members = ("metric", "details")
    http_status = 404

    def __init__(self, metric: str, details: str = "Metric is not configured.") -> None:
        super().__init__(f"{metric}: {details}")
        self.metric = metric
        self.details = details


class UnsupportedFieldTypeError(MirrorError):
    """A value or field type the mirror cannot use where it was sent."""

    members = ("mirror_type",)
    http_status = 400

    def __init__(self, mirror_type: str) -> None:
        super().__init__(f"unsupported field type {mirror_type}")
        self.mirror_type = mirror_type


class RemoteMirrorError(MirrorError):
    """Anything else: a bad request or a failure inside the mirror."""

    members = ("summary", "details")

    def __init__(self, summary: str, details: str = "", *, http_status: int = 400) -> None:
        super().__init__(summary if not details else f"{summary}: {details}")
        self.summary = summary
        self.details = details or summary
        self.http_status = http_status


#: The four error classes by ``_type`` (in the order above), and the union of their bodies.
ERRORS: dict[str, type[MirrorError]] = {c.type_name: c for c in MirrorError.__subclasses__()}
ERROR_BODY: Any = Union[tuple(c.wire for c in ERRORS.values())]  # noqa: UP007 (computed)


def invalid(field: str, problem: str) -> RemoteMirrorError:
    """The error for a request field that is missing or malformed; names the field."""
    return RemoteMirrorError(f"Invalid request: {field} {problem}")
