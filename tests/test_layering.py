"""The client and the checker stand on the protocol alone.

``mirror_kit.conformance`` checks mirrors written in any language and
``mirror_kit.client`` calls any mirror: importing either must not load aiohttp's
server, the OpenAPI builder, the notebook runtime or any telemetry source. Each
import runs in a fresh interpreter, so what an earlier test loaded cannot hide a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Module-name prefixes a client-side import must not load.
FORBIDDEN = (
    "aiohttp.web",
    "mirror_kit.server",
    "mirror_kit.openapi",
    "mirror_kit.runtime",
    "mirror_kit.service",
    "mirror_kit.sources",
)


def loaded_after(statement: str) -> list[str]:
    """Names in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout)


def forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if m == "aiohttp.web" or m.startswith(FORBIDDEN)]


@pytest.mark.parametrize(
    "statement",
    [
        "import mirror_kit.client",
        "import mirror_kit.conformance",
        "from mirror_kit import MirrorClient, AsyncMirrorClient, MirrorClientError",
        "import mirror_kit.protocol",
        "import mirror_kit",
    ],
)
def test_client_side_imports_load_no_server_and_no_source(statement: str) -> None:
    assert forbidden(loaded_after(statement)) == []


def test_the_check_itself_sees_a_server_import() -> None:
    """The subprocess check can fail: importing the server is seen."""
    modules = loaded_after("import mirror_kit.server")
    assert "aiohttp.web" in modules
    assert "mirror_kit.server" in forbidden(modules)


def test_top_level_names_still_resolve_lazily() -> None:
    modules = loaded_after(
        "import mirror_kit\n"
        "assert 'mirror_kit.runtime' not in sys.modules\n"
        "from mirror_kit import start_mirror, SyntheticSource, create_app\n"
        "assert callable(start_mirror) and callable(create_app)"
    )
    assert "mirror_kit.runtime" in modules
    assert "mirror_kit.sources.synthetic" in modules


def test_every_name_in_all_resolves() -> None:
    import mirror_kit

    assert set(mirror_kit.__all__) == {*mirror_kit._HOMES, "__version__"}
    for name in mirror_kit.__all__:
        assert getattr(mirror_kit, name) is not None, name
    assert set(mirror_kit.__all__) <= set(dir(mirror_kit))


def test_an_unknown_name_is_an_attribute_error() -> None:
    import mirror_kit

    with pytest.raises(AttributeError, match="no_such_name"):
        mirror_kit.no_such_name  # noqa: B018
