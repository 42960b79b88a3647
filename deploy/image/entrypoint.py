"""The image's entrypoint: ``python -m mirror_kit serve --bind-all``.

Containers and Kubernetes configure a program with environment variables (a
ConfigMap, a Secret); ``serve`` reads them itself: every flag ``--some-flag`` is
set by ``MIRROR_KIT_SOME_FLAG`` (mirror_kit/options.py), so nothing is copied onto
the command line, where ``ps`` would show a secret. In a container the mirror
binds every interface, unless ``MIRROR_KIT_HOST`` or ``MIRROR_KIT_BIND_ALL`` says
otherwise. Arguments given to the container are passed on (a flag beats its
variable).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from mirror_kit import cli


def serve_argv(environ: Mapping[str, str], extra: Sequence[str] = ()) -> list[str]:
    """The ``serve`` command line the image runs in ``environ``."""
    told = "MIRROR_KIT_HOST" in environ or "MIRROR_KIT_BIND_ALL" in environ
    return ["serve", *([] if told else ["--bind-all"]), *extra]


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(serve_argv(os.environ, sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
