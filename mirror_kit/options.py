"""Settings declared once: a dataclass field with its flag, help, type and default.

A settings class (``ServerSettings``, ``service.Limits``, ...) declares each field
with ``option(default, "--flag", "help")``; its type is the field's annotation. From
that one declaration come the ``serve`` command-line flag, the environment variable
(``--max-points`` is ``MIRROR_KIT_MAX_POINTS``), the parser of both and the default.
A field whose type is itself a settings dataclass (``ServerSettings.limits``)
contributes that class's options.

Where a value comes from, first found wins: the command line, then the environment
(an empty variable counts as unset), then the declared default. Pure standard
library, no I/O: the protocol and the sources may import it.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

ENV_PREFIX = "MIRROR_KIT_"
#: The words a switch's environment variable may take.
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

T = TypeVar("T")


@dataclass(frozen=True)
class Option:
    """One setting as the command line and the environment give it."""

    #: where the value goes in the settings object: "api_key", "limits.max_points"
    name: str
    flag: str
    #: int, float, str or bool (a switch)
    kind: type
    default: Any
    help: str
    metavar: str | None = None

    @property
    def env(self) -> str:
        """The environment variable: the flag, upper case, with the kit's prefix."""
        return ENV_PREFIX + self.flag.removeprefix("--").upper().replace("-", "_")

    @property
    def dest(self) -> str:
        """The attribute argparse stores the flag's value in."""
        return self.flag.removeprefix("--").replace("-", "_")

    def parse(self, text: str) -> Any:
        """The value ``text`` stands for; ValueError if it does not parse."""
        if self.kind is not bool:
            return self.kind(text)
        word = text.strip().lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise ValueError(f"{text!r}: use 1/true/yes or 0/false/no")
        return word in TRUE_WORDS


def option(default: Any, flag: str, help: str, *, metavar: str | None = None) -> Any:
    """A dataclass field declared as a setting (see the module docstring)."""
    return dataclasses.field(default=default, metadata={"option": (flag, help, metavar)})


def options(cls: type) -> tuple[Option, ...]:
    """Every option of the settings class ``cls``, nested settings included."""
    return tuple(_options(cls, ""))


def _options(cls: type, prefix: str) -> Iterable[Option]:
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        declared = field.metadata.get("option")
        if declared is not None:
            flag, help_text, metavar = declared
            yield Option(prefix + field.name, flag, _plain(kind), field.default, help_text, metavar)
        elif dataclasses.is_dataclass(kind):
            yield from _options(kind, f"{prefix}{field.name}.")  # type: ignore[arg-type]


def _plain(kind: Any) -> type:
    """``int`` for ``int``, ``str`` for ``str | None``: what a value is parsed as."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind not in (int, float, str, bool):
        raise TypeError(f"a setting is int, float, str or bool, not {kind!r}")
    return typing.cast(type, kind)


def build(cls: Callable[..., T], values: Mapping[str, Any]) -> T:
    """An instance of the settings class ``cls`` with ``values`` (by option name)
    set and every other field at its default."""
    kwargs: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        head, dot, rest = name.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            kwargs[head] = value
    hints = typing.get_type_hints(cls)
    for head, sub_values in nested.items():
        kwargs[head] = build(hints[head], sub_values)
    return cls(**kwargs)


def from_env(declared: Iterable[Option], environ: Mapping[str, str]) -> dict[str, Any]:
    """The values the environment sets, by option name; ValueError naming the
    variable whose value does not parse."""
    values = {}
    for opt in declared:
        text = environ.get(opt.env)
        if not text:
            continue
        try:
            values[opt.name] = opt.parse(text)
        except ValueError:
            kind = "switch" if opt.kind is bool else opt.kind.__name__
            raise ValueError(f"{opt.env}={text!r} is not a valid {kind}") from None
    return values


def add_arguments(parser: argparse._ActionsContainer, declared: Iterable[Option]) -> None:
    """One flag per option. A flag not given leaves no attribute (``resolve`` then
    takes the environment's value or the default), so the environment is read
    only by the command that uses it."""
    for opt in declared:
        shown = "none" if opt.default is None else opt.default
        if opt.kind is bool:
            parser.add_argument(
                opt.flag,
                action="store_true",
                default=argparse.SUPPRESS,
                help=f"{opt.help} (env {opt.env})",
            )
        else:
            parser.add_argument(
                opt.flag,
                type=opt.kind,
                default=argparse.SUPPRESS,
                metavar=opt.metavar,
                help=f"{opt.help} (default {shown}; env {opt.env})",
            )


def resolve(
    declared: Iterable[Option], args: argparse.Namespace, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Each option's value by name: the flag's if given, else the environment's,
    else the default."""
    declared = tuple(declared)
    values = {opt.name: opt.default for opt in declared}
    values.update(from_env(declared, environ))
    values.update({o.name: getattr(args, o.dest) for o in declared if hasattr(args, o.dest)})
    return values
