"""`make lab` as the README promises: it starts JupyterLab as root and as a user.

It binds 127.0.0.1 only (nobody else on the network can reach the kernels) and prints
the URL with its token. Containers, CI and many hosted notebooks run as root, where
plain `jupyter lab` refuses to start; as a user it must not pass ``--allow-root``.
The server is started for real as whoever runs the tests; from root, the command
``make`` would run for an unprivileged user is read with ``make -n`` (this machine's
Python lives under /root, which that user cannot execute). The server started here is
stopped (its process group) when the test ends.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
URL = re.compile(r"(http://127\.0\.0\.1:(\d+)/lab\?token=([0-9a-f]+))")
START_TIMEOUT_S = 60.0
#: Passed through the Makefile's LAB_ARGS: no browser, any free port, no traffic out.
LAB_ARGS = (
    "--no-browser --ServerApp.port=0 --LabApp.news_url=None "
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate "
    "--LabApp.extension_manager=readonly"
)
NOBODY = 65534


def private_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MAKE"))}
    env.update(HOME=str(home), JUPYTER_PLATFORM_DIRS="1", IPYTHONDIR=str(home / "ipython"))
    for name in ("RUNTIME", "CONFIG", "DATA"):
        env[f"JUPYTER_{name}_DIR"] = str(home / name.lower())
    env["JUPYTERLAB_SETTINGS_DIR"] = str(home / "settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(home / "workspaces")
    return env


def as_user() -> list[str]:
    """An unprivileged user's command prefix (from root), or none when not root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to run make lab as a user from root")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


def test_make_lab_as_a_user_does_not_allow_root(tmp_path: Path) -> None:
    command = [*as_user(), "make", "-n", "-s", "-C", str(ROOT), "lab"]
    done = subprocess.run(
        command, env=private_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lab = [line for line in done.stdout.splitlines() if "jupyter lab" in line]
    assert len(lab) == 1, done.stdout
    assert "--ServerApp.ip=127.0.0.1" in lab[0].split()
    assert ("--allow-root" in lab[0].split()) is False


@pytest.mark.timeout(120)
def test_make_lab_starts_on_loopback_and_prints_its_url(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "lab.log"
    with log.open("wb") as out:
        lab = subprocess.Popen(
            ["make", "-s", "-C", str(ROOT), "lab", f"LAB_ARGS={LAB_ARGS}"],
            env=private_env(home),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one below
        )
    try:
        url, port, token = wait_for_url(lab, log)
        with httpx.Client(trust_env=False, timeout=5.0) as http:
            kernels = http.get(f"http://127.0.0.1:{port}/api/kernels?token={token}")
            assert kernels.status_code == 200, kernels.text
        with httpx.Client(trust_env=False, timeout=5.0) as stranger:  # no token, no cookie
            assert stranger.get(f"http://127.0.0.1:{port}/api/kernels").status_code == 403
        listening = listening_addresses(lab.pid, int(port))
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening
        assert url.startswith("http://127.0.0.1:")
    finally:
        stop_group(lab)


def listening_addresses(pid: int, port: int) -> list[Any]:
    """The addresses that ``pid`` or any descendant listens on at ``port``.

    A descendant may exit between being listed and being read (JupyterLab runs short
    helper processes); one that is gone listens on nothing, so it is passed over.
    """
    parent = psutil.Process(pid)
    found = []
    for process in [parent, *parent.children(recursive=True)]:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found += [
            c.laddr for c in connections if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
    return found


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the process group this test started (make and the JupyterLab it ran)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(15)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for_url(lab: subprocess.Popen[bytes], log: Path) -> tuple[str, str, str]:
    """The URL with its token that JupyterLab prints; fail with the log if it exits."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = URL.search(text)
        if found:
            return found.group(1), found.group(2), found.group(3)
        if lab.poll() is not None:
            pytest.fail(f"make lab exited ({lab.returncode}):\n{text[-2000:]}")
        time.sleep(0.2)
    pytest.fail(f"no URL with a token within {START_TIMEOUT_S} s:\n{log.read_text()[-2000:]}")
