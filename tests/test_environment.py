"""environment.yml, binder/ and pyproject.toml must describe the same dependencies.

Binder and conda users get their packages from the YAML files, pip users from
pyproject.toml: if they drift apart, one of them gets a broken tutorial.
"""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$")


def _split(requirement: str) -> tuple[str, str]:
    match = _NAME.match(requirement)
    assert match, requirement
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["notebook"]
    return dict(_split(r) for r in wanted)


def _conda_requirements(path: Path) -> dict[str, str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    pairs = dict(_split(d) for d in deps if isinstance(d, str))
    pairs.pop("pip", None)
    pairs.pop("python", None)
    return pairs


def test_environment_yml_matches_pyproject() -> None:
    assert _conda_requirements(ROOT / "environment.yml") == _pyproject_requirements()


def test_binder_environment_is_the_same_file() -> None:
    assert (ROOT / "binder" / "environment.yml").read_text() == (
        ROOT / "environment.yml"
    ).read_text()


def test_binder_installs_the_package() -> None:
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps ." in post_build
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_python_is_pinned_for_binder() -> None:
    deps = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())["dependencies"]
    assert any(isinstance(d, str) and d.startswith("python=3.1") for d in deps)
