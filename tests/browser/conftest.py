"""Fixtures for the browser tests: JupyterLab, Debian's Chromium via Playwright, a page.

nbval runs the notebooks in a kernel but never renders them; these tests open them
in JupyterLab in a real browser. They need ``/usr/bin/chromium`` (Debian package
``chromium``) and the ``playwright`` Python package (its own browser download is not
used). Without them the tests are skipped, except under CI (``CI=true``) where a
missing browser is a failure. JupyterLab and Chromium live for this package's tests
only and are stopped, with every child process, when they are done.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import missing_tool

from .lab_server import LabServer
from .notebooks import copy_cleared
from .processes import alive, descendants, reap
from .screenshots import ARTIFACTS, ROOT

NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = Path(os.environ.get("MIRROR_KIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # needed as root (CI); harmless otherwise
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Resolve no host name but 127.0.0.1: the page can reach nothing else.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
INSTALL = (
    "apt-get update && apt-get install -y chromium; "
    "pip install -e '.[test]' (brings playwright; `playwright install` is not needed)"
)
VIEWPORT = {"width": 1280, "height": 900}
_FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: opens notebooks in JupyterLab in Chromium (Playwright)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember a failed test so the page fixture can keep a screenshot of it."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


def missing_tools() -> list[str]:
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright Python package")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(str(CHROMIUM))
    return missing


@pytest.fixture(scope="package")
def browser_tools() -> None:
    """Skip without Chromium/Playwright; under CI (CI=true) fail instead."""
    missing = missing_tools()
    if not missing:
        return
    missing_tool(f"browser tests need {', '.join(missing)}; install: {INSTALL}")


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="package")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary root holding the tutorial's notebooks, outputs cleared."""
    root = tmp_path_factory.mktemp("lab-root")
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        copy_cleared(notebook, root / notebook.name)
    return root


@pytest.fixture(scope="package")
def lab(
    browser_tools: None, lab_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabServer]:
    """JupyterLab on 127.0.0.1 with private settings; stopped with its kernels at the end."""
    server = LabServer.start(lab_root, tmp_path_factory.mktemp("lab-home"))
    yield server
    left = server.stop()
    assert not left, f"processes left behind by JupyterLab: {left}"
    assert server.process.returncode is not None


@pytest.fixture(scope="package")
def chromium(browser_tools: None) -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; closed with all its processes at the end."""
    from playwright.sync_api import sync_playwright

    before = {p.pid for p in descendants(os.getpid())}
    playwright = sync_playwright().start()
    driver = [p for p in descendants(os.getpid()) if p.pid not in before]
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    except BaseException:
        playwright.stop()
        raise
    started = driver + [c for d in driver for c in descendants(d.pid)]
    yield browser
    browser.close()
    playwright.stop()
    reap(started)
    assert not alive(started), f"browser processes left behind: {alive(started)}"


@pytest.fixture
def page(chromium: Any, lab: LabServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no storage shared between tests); loopback traffic only.

    On failure a screenshot is kept in test-artifacts/browser/. The test's kernels are
    shut down afterwards, so each test starts from fresh kernels.
    """
    context = chromium.new_context(viewport=VIEWPORT)
    context.route("**/*", _loopback_only)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        if request.node.stash.get(_FAILED, False):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=ARTIFACTS / f"{request.node.name}-failure.png")
        context.close()
        lab.shutdown_kernels()


def _loopback_only(route: Any) -> None:
    """Let the page talk to the local JupyterLab only (never another address)."""
    if route.request.url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:")):
        route.continue_()
    else:
        route.abort()
