"""Start a real Prometheus on a free loopback port with known data, for tests and benches.

Data is loaded by backfilling: known samples are written as OpenMetrics text and
turned into TSDB blocks with ``promtool tsdb create-blocks-from openmetrics``
before Prometheus starts on that data directory. Retention is set to ten years so
the blocks (a few days old) are kept. Prometheus itself comes from Debian's
``prometheus`` package (``apt-get install -y --no-install-recommends prometheus``).

``serve_known_data()`` serves ``KNOWN_DATA``; tests wrap it in a session-scoped
fixture so Prometheus starts once.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from conftest import free_port, missing_tool

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
STEP_MS = 10_000
#: Start of the known data: an aligned hour three days ago (inside any retention).
BASE_MS = (int(time.time() * 1000) // HOUR_MS) * HOUR_MS - 3 * DAY_MS
SAMPLES = 720  # two hours at 10 s
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus (Debian's package)"


@dataclass(frozen=True)
class Series:
    """One known series: its metric family, labels, and values at BASE + i * STEP."""

    metric: str
    kind: str  # OpenMetrics type: gauge or counter
    labels: Mapping[str, str]
    values: np.ndarray
    start_ms: int = BASE_MS
    step_ms: int = STEP_MS
    #: timestamps off the regular grid, when given (ascending, one per value)
    at_ms: tuple[int, ...] | None = None

    @property
    def timestamps(self) -> np.ndarray:
        if self.at_ms is not None:
            return np.asarray(self.at_ms, dtype=np.int64)
        return self.start_ms + self.step_ms * np.arange(len(self.values), dtype=np.int64)


HOSTS = {
    "a-host": {"region": "eu-west", "cores": "4", "production": "true"},
    "b-host": {"region": "eu-west", "cores": "8", "production": "true"},
    "c-host": {"region": "us-east", "cores": "2", "production": "false"},
}
TEMPERATURE_OFFSET = {"a-host": 20.0, "b-host": 30.0, "c-host": 40.0}
REQUEST_RATE = {"a-host": 0.5, "b-host": 2.0}  # per second
APPS = {"shop.cart": 0.1, "shop.checkout": 0.2, "search": 0.3}
ODD_PATH = 'C:\\tmp\\"q" a.b+c'


def _known_data() -> list[Series]:
    i = np.arange(SAMPLES)
    out = [
        Series(
            "node_temperature_celsius",
            "gauge",
            {"host": host, **labels},
            TEMPERATURE_OFFSET[host] + (i % 60) * 0.5,
        )
        for host, labels in HOSTS.items()
    ]
    out += [
        Series(
            "http_requests_total",
            "counter",
            {"host": host, "job": "web"},
            1000.0 + rate * (STEP_MS / 1000) * i,
        )
        for host, rate in REQUEST_RATE.items()
    ]
    ratio = np.where(i % 4 == 0, np.nan, (i % 4).astype(np.float64))
    out.append(Series("queue_ratio", "gauge", {"host": "a-host"}, ratio))
    dip = np.where(i % 5 == 0, np.nan, -1.0 - (i % 5))
    out.append(Series("dip_gauge", "gauge", {"host": "a-host"}, dip))
    out += [
        Series("app_latency_seconds", "gauge", {"host": "a-host", "app": app}, np.full(SAMPLES, v))
        for app, v in APPS.items()
    ]
    # A label value PromQL must quote and a regex must escape: \\, ", . and +.
    out.append(Series("odd_gauge", "gauge", {"host": "a-host", "path": ODD_PATH}, i * 1.0))
    # Samples on the first and the last millisecond of every minute: a window's range
    # one millisecond too long or too short shows.
    minutes = BASE_MS + 60_000 * np.arange(SAMPLES // 6, dtype=np.int64)
    edges = np.column_stack((minutes, minutes + 59_999)).ravel()
    values = np.column_stack((1000.0 + np.arange(len(minutes)), np.arange(len(minutes))))
    out.append(Series("edge_gauge", "gauge", {"host": "a-host"}, values.ravel(),
                      at_ms=tuple(int(t) for t in edges)))  # fmt: skip
    return out


KNOWN_DATA = _known_data()


def known(metric: str, **labels: str) -> Series:
    """The one known series of ``metric`` whose labels include ``labels``."""
    found = [
        s
        for s in KNOWN_DATA
        if s.metric == metric and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (metric, labels, found)
    return found[0]


def _sample(value: float) -> str:
    return "NaN" if math.isnan(value) else repr(float(value))


def _escape(value: str) -> str:
    """An OpenMetrics label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_openmetrics(
    series: Iterable[Series], path: Path, start_ms: int | None = None, end_ms: int | None = None
) -> int:
    """OpenMetrics text for the series' samples in ``[start_ms, end_ms)`` (families
    grouped, ``# EOF`` last); returns how many samples were written."""
    by_family: dict[str, list[Series]] = {}
    for s in series:
        by_family.setdefault(s.metric, []).append(s)
    written = 0
    with path.open("w") as out:
        for metric, members in by_family.items():
            out.write(f"# TYPE {metric.removesuffix('_total')} {members[0].kind}\n")
            for s in members:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
                stamps = s.timestamps
                low = stamps[0] if start_ms is None else start_ms
                keep = (stamps >= low) & (stamps < (2**62 if end_ms is None else end_ms))
                out.writelines(
                    f"{metric}{{{labels}}} {_sample(v)} {t / 1000:.3f}\n"
                    for t, v in zip(stamps[keep], s.values[keep], strict=True)
                )
                written += int(keep.sum())
        out.write("# EOF\n")
    return written


def binaries() -> tuple[str, str] | None:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    return (prometheus, promtool) if prometheus and promtool else None


def require_binaries() -> tuple[str, str]:
    """The prometheus and promtool paths; fail under CI=true, skip elsewhere, if missing."""
    found = binaries()
    if found is not None:
        return found
    missing_tool(f"the prometheus and promtool binaries are not on PATH; install: {INSTALL_HINT}")


class PrometheusServer:
    """A prometheus process we started; ``stop()`` ends it (and only it)."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def backfill(promtool: str, series: list[Series], workdir: Path, data_dir: Path) -> None:
    """Write the series into TSDB blocks with promtool, one day of samples per call.

    promtool re-reads its whole input once per 2-hour block it writes, so one file
    of 30 days takes minutes; day-sized files keep the work linear.
    """
    first = min(int(s.timestamps[0]) for s in series) // DAY_MS * DAY_MS
    last = max(int(s.timestamps[-1]) for s in series)
    for day in range(first, last + 1, DAY_MS):
        part = workdir / "backfill.om"
        if not write_openmetrics(series, part, day, day + DAY_MS):
            continue
        result = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(part), str(data_dir)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"promtool backfill failed: {result.stderr[-2000:]}")


def start_prometheus(series: Iterable[Series], workdir: Path) -> PrometheusServer:
    """Backfill ``series`` into ``workdir`` and start Prometheus on it; wait until ready."""
    prometheus, promtool = require_binaries()
    data_dir = workdir / "data"
    backfill(promtool, list(series), workdir, data_dir)
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 10s\nscrape_configs: []\n")
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir}",
                "--storage.tsdb.retention.time=3650d",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = PrometheusServer(process, f"http://127.0.0.1:{port}", log_path)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: PrometheusServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    for _ in range(int(START_TIMEOUT_S / 0.1)):
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    tail = server.log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"prometheus did not become ready on {server.url}:\n{tail}")


def serve_known_data() -> Iterator[PrometheusServer]:
    """A Prometheus serving KNOWN_DATA on a free 127.0.0.1 port, until the generator ends.

    Test modules wrap it in a session-scoped fixture (``yield from serve_known_data()``).
    """
    require_binaries()
    with (
        tempfile.TemporaryDirectory(prefix="mirror-kit-prometheus-") as tmp,
        start_prometheus(KNOWN_DATA, Path(tmp)) as server,
    ):
        yield server
