"""A throw-away JupyterLab server for browser tests.

It serves a temporary root directory on 127.0.0.1 (port chosen by the server, read
back from its runtime file), with a token, and with its own runtime, config, data,
settings, workspaces and IPython directories: the developer's own Jupyter settings,
workspaces or extensions cannot change what the test sees, and the test cannot
change them. Lab's news, update check and PyPI extension manager are turned off so
the server sends no traffic outside the machine.

The port is picked here (port 0 read back needs jupyter_server >= 2.20) with
``port_retries=0``; if another program takes it in between, the start is retried.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from conftest import free_port

from .processes import alive, descendants, reap

START_TIMEOUT_S = 60.0
START_ATTEMPTS = 3
STOP_TIMEOUT_S = 15.0
POLL_S = 0.1

#: User settings written into the private settings dir: no "Jupyter news?" toast
#: over the notebook, no update check.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


class LabStartError(RuntimeError):
    """JupyterLab did not answer in time; the message holds its log's tail."""


class LabExited(LabStartError):
    """JupyterLab exited while starting (e.g. its port was taken meanwhile): worth a retry."""


def lab_environment(home: Path) -> dict[str, str]:
    """The server's environment: private Jupyter/IPython dirs under ``home``.

    MPLBACKEND is dropped: the kernels must use the backend the notebook asks for.
    """
    dirs = {
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTERLAB_SETTINGS_DIR": "settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
        "IPYTHONDIR": "ipython",
    }
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    for variable, name in dirs.items():
        path = home / name
        path.mkdir(parents=True, exist_ok=True)
        env[variable] = str(path)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def write_user_settings(settings_dir: Path) -> None:
    for relative, values in USER_SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def lab_command(root: Path, token: str, port: int) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # CI and this workplace run as root
        command.append("--allow-root")
    return command


@dataclass
class LabServer:
    """A running JupyterLab: ``url(path)`` for the browser, ``stop()`` when done."""

    process: subprocess.Popen[bytes]
    base_url: str
    token: str
    root: Path
    log_path: Path
    killed: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, root: Path, home: Path) -> LabServer:
        """Start JupyterLab on ``root``; return once its REST API answers."""
        env = lab_environment(home)
        write_user_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
        for attempt in range(START_ATTEMPTS - 1):
            try:
                return cls._start_once(root, env, home / f"jupyterlab-{attempt}.log")
            except LabExited:
                continue
        return cls._start_once(root, env, home / "jupyterlab-last.log")

    @classmethod
    def _start_once(cls, root: Path, env: dict[str, str], log_path: Path) -> LabServer:
        token, port = secrets.token_hex(16), free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                lab_command(root, token, port),
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = cls(process, f"http://127.0.0.1:{port}/", token, root, log_path)
        try:
            server.wait_until_ready()
        except BaseException:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
            raise
        return server

    def wait_until_ready(self) -> None:
        """Poll ``/api/status`` (bounded); fail early if the process exits."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise LabExited(f"JupyterLab exited ({code}):\n{self.log_tail()}")
            if self._answers():
                return
            time.sleep(POLL_S)
        raise LabStartError(f"JupyterLab not ready in {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        try:
            with self.api() as api:
                return api.get("api/status", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def url(self, path: str = "lab") -> str:
        separator = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{separator}token={self.token}"

    def api(self) -> httpx.Client:
        """A REST client with the token (no proxies: the server is on loopback)."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"token {self.token}"},
            trust_env=False,
            timeout=10.0,
        )

    def shutdown_kernels(self) -> None:
        """Stop every kernel (between tests: each test starts from fresh kernels)."""
        with self.api() as api:
            for kernel in api.get("api/kernels").raise_for_status().json():
                api.delete(f"api/kernels/{kernel['id']}").raise_for_status()

    def stop(self) -> list[psutil.Process]:
        """Shut the server and its kernels down; return processes still alive (none expected).

        The REST shutdown lets Jupyter stop its kernels itself; whatever does not exit
        within the grace time is killed and listed in ``self.killed``.
        """
        below = descendants(self.process.pid)
        if self.process.poll() is None:
            try:
                with self.api() as api:
                    api.post("api/shutdown")
            except httpx.HTTPError:
                self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.killed.append(f"{self.process.pid} jupyterlab")
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        self.killed += reap(below, STOP_TIMEOUT_S)
        return alive(below)
