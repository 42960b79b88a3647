"""The image's entrypoint: ``python -m mirror_kit serve --bind-all``, flags from the environment.

Containers and Kubernetes configure a program with environment variables (a
ConfigMap, a Secret), the mirror with ``serve`` flags. This bridge derives one
from the other instead of keeping a second list: every ``serve`` option
``--some-flag`` is set by ``MIRROR_KIT_SOME_FLAG``, so flags the kit gains later
(stores, limits) are configurable with no change here. Switches (``--bind-all``)
take ``1``/``true``/``yes``; ``--bind-all`` is on unless ``MIRROR_KIT_HOST`` is
set or ``MIRROR_KIT_BIND_ALL=0``. Arguments given to the container are appended as
they are, after the ones from the environment (argparse: the last one wins).

Variables the kit reads by itself (``MIRROR_KIT_AUTH_SECRET``, a secret that must
stay off the command line, where ``ps`` shows it) are left to the kit. A
``MIRROR_KIT_*`` variable that names no flag is left in the environment too (the
kit may read it) and reported on stderr, so that a misspelt one is seen.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from mirror_kit import cli

PREFIX = "MIRROR_KIT_"
#: Read by the kit from the environment; never copied onto the command line.
READ_BY_THE_KIT = frozenset({"MIRROR_KIT_AUTH_SECRET"})
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def serve_options() -> dict[str, argparse.Action]:
    """``serve``'s long options by their variable name, from the kit's own parser."""
    parser = cli._parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options: dict[str, argparse.Action] = {}
    for action in commands.choices["serve"]._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                options[PREFIX + flag[2:].upper().replace("-", "_")] = action
    return options


def serve_argv(environ: Mapping[str, str], extra: Sequence[str] = ()) -> list[str]:
    """The ``serve`` command line for ``environ``; raises ValueError on a bad switch value."""
    options = serve_options()
    if "MIRROR_KIT_HOST" not in environ:  # in a container: every interface, unless told
        environ = {"MIRROR_KIT_BIND_ALL": "1", **environ}
    argv = ["serve"]
    for name in sorted(environ):
        action = options.get(name)
        if action is None or name in READ_BY_THE_KIT:
            continue
        flag, value = max(action.option_strings, key=len), environ[name]
        if action.nargs == 0:  # a switch
            if value.lower() not in TRUE | FALSE:
                raise ValueError(f"{name}={value!r}: use 1/true/yes or 0/false/no")
            argv += [flag] if value.lower() in TRUE else []
        elif value != "":
            argv.append(f"{flag}={value}")
    return argv + list(extra)


def unused(environ: Mapping[str, str]) -> list[str]:
    """``MIRROR_KIT_*`` names that are no ``serve`` flag and not read by the kit."""
    options = serve_options()
    return sorted(
        name
        for name in environ
        if name.startswith(PREFIX) and name not in options and name not in READ_BY_THE_KIT
    )


def main(argv: Sequence[str] | None = None) -> int:
    extra = sys.argv[1:] if argv is None else list(argv)
    try:
        command = serve_argv(os.environ, extra)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name in unused(os.environ):
        print(f"note: {name} is no `serve` flag; left for the kit to read", file=sys.stderr)
    return cli.main(command)


if __name__ == "__main__":
    sys.exit(main())
