"""Check bodies and answers against the served OpenAPI document, with jsonschema.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so one validator does it: the
document itself is the root resource (its ``#/components/schemas/...`` references
resolve inside it) and the schema checked is a ``$ref`` into it. ``discriminator``
is an OpenAPI annotation that JSON Schema ignores; the ``_type`` constants in each
branch do the discriminating.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from mirror_kit.openapi import build_document

Json = dict[str, Any]


_validators: dict[tuple[int, str], tuple[Json, Draft202012Validator]] = {}


def validator(document: Json, pointer: str) -> Draft202012Validator:
    """A validator for the schema at ``pointer`` (``#/components/schemas/X`` or a path).

    Cached per document object (kept alive in the cache, so its id is not reused).
    """
    key = (id(document), pointer)
    if key not in _validators:
        _validators[key] = (document, Draft202012Validator({**document, "$ref": pointer}))
    return _validators[key][1]


def schema_errors(document: Json, name: str, body: Any) -> list[str]:
    """Why ``body`` is not a valid ``components/schemas/<name>`` (empty when it is)."""
    found = validator(document, f"#/components/schemas/{name}").iter_errors(body)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def _escape(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


def answer_pointer(document: Json, path: str, method: str, status: int) -> str:
    """The schema an answer must match: the operation's response for the status, or
    its ``default``; an answer to anything the document does not describe (unknown
    path or method) is an error body."""
    operation = document["paths"].get(path, {}).get(method.lower())
    if operation is None:
        return "#/components/schemas/MirrorError"
    key = str(status) if str(status) in operation["responses"] else "default"
    assert key in operation["responses"], f"{method} {path}: status {status} is not described"
    where = f"#/paths/{_escape(path)}/{method.lower()}/responses/{key}"
    return f"{where}/content/application~1json/schema"


def answer_errors(document: Json, path: str, method: str, status: int, body: Any) -> list[str]:
    """Why an answer body does not match what the document promises (empty when it does)."""
    pointer = answer_pointer(document, path, method, status)
    found = validator(document, pointer).iter_errors(body)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def answer_headers(document: Json, path: str, method: str, status: int) -> list[str]:
    """The headers the document says the answer carries."""
    operation = document["paths"].get(path, {}).get(method.lower())
    if operation is None:
        return []
    key = str(status) if str(status) in operation["responses"] else "default"
    return list(operation["responses"][key].get("headers", {}))


DOCUMENT: Json = build_document()
