"""Settings declared once (mirror_kit/options.py): flags, variables and defaults agree."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from mirror_kit import options
from mirror_kit.options import option
from mirror_kit.server import Listen, ServerSettings


@dataclass(frozen=True)
class Inner:
    depth: int = option(3, "--depth", "how deep")


@dataclass(frozen=True)
class Outer:
    name: str | None = option(None, "--name", "a name")
    loud: bool = option(False, "--loud", "a switch")
    inner: Inner = field(default_factory=Inner)


def test_each_field_is_one_option_nested_ones_included() -> None:
    declared = options.options(Outer)
    assert [(o.name, o.flag, o.env, o.kind, o.default) for o in declared] == [
        ("name", "--name", "MIRROR_KIT_NAME", str, None),
        ("loud", "--loud", "MIRROR_KIT_LOUD", bool, False),
        ("inner.depth", "--depth", "MIRROR_KIT_DEPTH", int, 3),
    ]
    assert options.build(Outer, {"inner.depth": 5, "loud": True}) == Outer(None, True, Inner(5))


def test_a_flag_beats_its_variable_which_beats_the_default() -> None:
    parser = argparse.ArgumentParser()
    declared = options.options(Outer)
    options.add_arguments(parser, declared)
    environ = {"MIRROR_KIT_DEPTH": "7", "MIRROR_KIT_LOUD": "yes", "MIRROR_KIT_NAME": ""}
    values = options.resolve(declared, parser.parse_args(["--depth", "9"]), environ)
    assert options.build(Outer, values) == Outer(None, True, Inner(9))
    values = options.resolve(declared, parser.parse_args([]), {"MIRROR_KIT_LOUD": "0"})
    assert options.build(Outer, values) == Outer()


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ValueError, match="MIRROR_KIT_LOUD='maybe' is not a valid switch"):
        options.from_env(options.options(Outer), {"MIRROR_KIT_LOUD": "maybe"})
    with pytest.raises(ValueError, match="MIRROR_KIT_DEPTH='deep' is not a valid int"):
        options.from_env(options.options(Outer), {"MIRROR_KIT_DEPTH": "deep"})


def test_only_plain_types_can_be_settings() -> None:
    @dataclass(frozen=True)
    class Odd:
        ratio: complex = option(1j, "--ratio", "not a plain type")

    with pytest.raises(TypeError, match="int, float, str or bool"):
        options.options(Odd)


def test_every_server_setting_has_a_flag_of_its_own() -> None:
    declared = options.options(ServerSettings) + options.options(Listen)
    flags = [o.flag for o in declared]
    assert len(flags) == len(set(flags))
    # every field of ServerSettings (the nested Limits through its own two)
    names = {o.name for o in declared}
    assert {"api_key", "max_unsent_bytes", "limits.max_points", "port"} <= names
    assert options.build(ServerSettings, {}) == ServerSettings()
