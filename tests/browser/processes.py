"""Child-process bookkeeping, so a browser test run leaves no JupyterLab, kernel or Chromium.

JupyterLab starts kernels and Playwright starts a driver that starts Chromium: neither
returns their process ids, so we take them from the process tree (psutil) and make
sure every one of them is gone at the end.
"""

from __future__ import annotations

from collections.abc import Iterable

import psutil


def descendants(pid: int) -> list[psutil.Process]:
    """All living processes below ``pid`` (children, grandchildren, ...)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    """The processes that still run (a zombie counts as gone: it holds no resources)."""
    living = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                living.append(process)
        except psutil.NoSuchProcess:
            continue
    return living


def reap(processes: Iterable[psutil.Process], grace_s: float = 10.0) -> list[str]:
    """Wait ``grace_s`` for ``processes`` to exit, then kill the rest.

    Returns a description of each process that had to be killed (empty when all left
    on their own), so a caller can tell a clean shutdown from a forced one.
    """
    _, survivors = psutil.wait_procs(list(processes), timeout=grace_s)
    killed = []
    for process in survivors:
        try:
            killed.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(survivors, timeout=grace_s)
    return killed
