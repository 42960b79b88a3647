"""`make image-test`: build the Containerfile and run the image as Kubernetes would.

1. A Python base from Debian's packages (debootstrap: python3, python3-venv,
   python3-pip), since public base images cannot be pulled here; cached in
   $MIRROR_KIT_IMAGE_CACHE (/var/tmp/mirror-kit-image) and imported once into
   buildah's storage as localhost/mirror-kit-base:bookworm.
2. ``buildah bud`` of the Containerfile with that base as PYTHON_BASE (vfs storage,
   chroot isolation: no daemon, no overlay mounts, no user namespaces needed).
3. The image run the way the Deployment runs it: root filesystem read-only, a tmpfs
   on /tmp only, the image's user (10001), environment and entrypoint, in its own
   mount and PID namespaces (podman cannot start containers on this machine: crun
   may not set the rlimits it asks for, nor manage cgroups). Then, from the host:
   the conformance checker (Test Connection, metric queries, 23 checks), a metric
   answer compared byte for byte with the kit on the host, the image's HEALTHCHECK
   command, a write to the root refused with EROFS, memory, and SIGTERM: the mirror
   must exit 0 within the pod's grace period.

Needs root and Debian's ``buildah debootstrap`` (``apt-get install buildah
debootstrap``). Prints each phase's time. ``--rebuild-base`` debootstraps again.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MIRROR_KIT_IMAGE_CACHE", "/var/tmp/mirror-kit-image"))
BASE_IMAGE = "localhost/mirror-kit-base:bookworm"
IMAGE = "localhost/mirror-kit:image-test"
STORAGE = ["--storage-driver", "vfs"]
SUITE = "bookworm"
PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
HOST_CA = Path("/etc/ssl/certs")  # the host's trust store, for pip behind a proxy
T0 = 1_767_225_600_000
HOUR = 3_600_000
READY_TIMEOUT_S = 60.0
TOOLS = ("buildah", "debootstrap", "unshare", "nsenter", "chroot", "mount")

#: Inside the new mount namespace: a read-only root, a tmpfs /tmp, then the image's
#: entrypoint as its user. $1 root, $2 user, $3 workdir, the rest the command.
NAMESPACE_SCRIPT = r"""
set -eu
root=$1 user=$2 workdir=$3; shift 3
mount --make-rprivate /
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount -t tmpfs -o size=16m,mode=1777,nosuid,nodev tmpfs "$root/tmp"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --rbind /dev "$root/dev"
exec chroot --userspec="$user" "$root" /usr/bin/env --chdir="$workdir" "$@"
"""


def say(line: str) -> None:
    print(line, flush=True)


def run(command: list[str], **options: Any) -> str:
    """Run a command; its output, or SystemExit with its output on failure."""
    done = subprocess.run(command, capture_output=True, text=True, **options)
    if done.returncode != 0:
        raise SystemExit(
            f"failed ({done.returncode}): {' '.join(command)}\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


def buildah(*args: str) -> str:
    return run(["buildah", *STORAGE, *args]).strip()


@contextlib.contextmanager
def phase(name: str, timings: dict[str, float]) -> Iterator[None]:
    say(f"== {name}")
    start = time.monotonic()
    yield
    timings[name] = time.monotonic() - start
    say(f"   {name}: {timings[name]:.1f} s")


def debian_mirror() -> str:
    """The Debian mirror apt uses here (deb822 or one-line sources), else Debian's own."""
    for path in sorted(Path("/etc/apt").glob("sources.list*")) + sorted(
        Path("/etc/apt/sources.list.d").glob("*")
    ):
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if line.startswith("URIs:") and "security" not in line:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def base_rootfs(rebuild: bool) -> Path:
    """debootstrap's root filesystem for the base, built once into the cache."""
    rootfs = CACHE / f"rootfs-{SUITE}"
    if rootfs.is_dir() and not rebuild:
        say(f"   cached: {rootfs}")
        return rootfs
    partial = CACHE / f"rootfs-{SUITE}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(rootfs, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    say(f"   debootstrap --variant=minbase {SUITE} from {mirror}")
    run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(partial), mirror])
    # what an image needs no copy of: downloaded packages, package lists
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (partial / junk).glob("*"):
            if entry.is_file():
                entry.unlink()
    partial.rename(rootfs)
    return rootfs


def base_image(rootfs: Path, rebuild: bool) -> None:
    """The rootfs as an image in buildah's storage (a single layer from scratch)."""
    present = (
        subprocess.run(
            ["buildah", *STORAGE, "inspect", "--type", "image", BASE_IMAGE], capture_output=True
        ).returncode
        == 0
    )
    if present and not rebuild:
        say(f"   cached: {BASE_IMAGE}")
        return
    container = buildah("from", "scratch")
    try:
        mount = buildah("mount", container)
        run(["cp", "-a", f"{rootfs}/.", mount])
        buildah("umount", container)
        buildah("config", "--env", "LANG=C.UTF-8", container)
        buildah("commit", "--quiet", "--rm", container, BASE_IMAGE)
    except BaseException:
        subprocess.run(["buildah", *STORAGE, "rm", container], capture_output=True)
        raise


def build_image() -> None:
    command = [
        "bud",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--layers=false",
        "--build-arg",
        f"PYTHON_BASE={BASE_IMAGE}",
        "-t",
        IMAGE,
    ]
    if (HOST_CA / "ca-certificates.crt").is_file():
        command += [
            "--volume",
            f"{HOST_CA}:/run/build-ca:ro",
            "--build-arg",
            "PIP_CERT=/run/build-ca/ca-certificates.crt",
        ]
    buildah(*command, "-f", str(ROOT / "Containerfile"), str(ROOT))
    size = json.loads(run(["buildah", *STORAGE, "images", "--json", IMAGE]))[0].get("size")
    say(f"   built {IMAGE}: {size}")


def image_config() -> dict[str, Any]:
    return json.loads(buildah("inspect", "--type", "image", IMAGE))["Docker"]["config"]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def deployment_grace_s() -> int:
    deployment = yaml.safe_load((ROOT / "deploy/base/deployment.yaml").read_text())
    return int(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


class Running:
    """The image's entrypoint in its own namespaces, on a loopback port of this host."""

    def __init__(self, root: str, config: dict[str, Any], env: dict[str, str]) -> None:
        self.root, self.config = root, config
        image_env = dict(item.split("=", 1) for item in config["Env"])
        self.env = {**image_env, **env}
        self.port = int(self.env["MIRROR_KIT_PORT"])
        command = [*config["Entrypoint"], *(config.get("Cmd") or [])]
        self.log = (CACHE / "image-test.log").open("w+b")
        self.outer = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "bash",
                "-c",
                NAMESPACE_SCRIPT,
                "namespace",
                root,
                config["User"],
                config["WorkingDir"] or "/",
                *command,
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def mirror_pid(self) -> int:
        """The host PID of the namespace's PID 1: the entrypoint, then gunicorn's arbiter."""
        children = psutil.Process(self.outer.pid).children()
        if not children:
            raise RuntimeError("the namespace has no process")
        return children[0].pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.outer.poll() is not None:
                raise SystemExit(
                    f"the image's mirror exited ({self.outer.returncode}):\n{self.log_text()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).is_success:
                    return
            time.sleep(0.2)
        raise SystemExit(f"not ready within {READY_TIMEOUT_S:g} s:\n{self.log_text()}")

    def inside(self, command: list[str], user: str | None = None) -> subprocess.CompletedProcess:
        """``command`` in the mirror's namespaces and root, as ``user`` (root if None)."""
        chroot = ["chroot", *([f"--userspec={user}"] if user else []), self.root]
        return subprocess.run(
            ["nsenter", f"--target={self.mirror_pid}", "--mount", "--pid", *chroot, *command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def processes(self) -> list[psutil.Process]:
        tree = psutil.Process(self.mirror_pid)
        return [tree, *tree.children(recursive=True)]

    def memory_mib(self) -> float:
        return sum(p.memory_info().rss for p in self.processes()) / 2**20

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM to the mirror as the kubelet sends it: (exit status, seconds to exit)."""
        start = time.monotonic()
        os.kill(self.mirror_pid, signal.SIGTERM)
        try:
            status = self.outer.wait(deployment_grace_s())
        except subprocess.TimeoutExpired:
            self.outer.kill()
            self.outer.wait()
            status = None
        return status, time.monotonic() - start

    def log_text(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]


def metric_body() -> bytes:
    from mirror_kit.protocol import EqualityCondition, MetricsQuery, MetricsRequest, StringValue

    query = MetricsQuery(
        T0 - 3 * HOUR,
        T0,
        (
            EqualityCondition("host", StringValue("a-host")),
            EqualityCondition("metric", StringValue("cpu.user")),
        ),
    )
    return json.dumps(MetricsRequest(query, {}).to_json()).encode()


def answer_on_host(body: bytes, api_key: str) -> bytes:
    """The same metric request answered by the kit on the host, in this process."""
    from mirror_kit import start_mirror

    with start_mirror(port=0, api_key=api_key) as mirror:
        return httpx.post(f"{mirror.url}/api/metric", content=body, timeout=30).content


def check_running(mirror: Running, api_key: str, report: Path) -> dict[str, Any]:
    url = f"http://127.0.0.1:{mirror.port}"
    facts: dict[str, Any] = {}
    # 1. the conformance checker, as StackState would call it
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mirror_kit",
            "check",
            url,
            "--api-key",
            api_key,
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    say("\n".join("   " + line for line in done.stdout.strip().splitlines()[-4:]))
    if done.returncode != 0:
        raise SystemExit(f"mirror_kit check failed:\n{done.stdout}{done.stderr}")
    results = json.loads(report.read_text())
    facts["checks"] = results["counts"]
    # 2. a metric answer, byte for byte the kit's on the host
    body = metric_body()
    answer = httpx.post(f"{url}/api/metric", content=body, timeout=30)
    assert answer.headers["X-MIRROR-API-KEY"] == api_key, answer.headers
    points = len(answer.json()["telemetry"]["points"])
    if answer.content != answer_on_host(body, api_key):
        raise SystemExit("the image's metric answer differs from the kit's on the host")
    facts["metric_points"] = points
    say(f"   3-hour raw query: {points} points, identical to the kit on the host")
    # 3. the image's HEALTHCHECK command, as the runtime would run it
    test = mirror.config["Healthcheck"]["Test"]
    assert test[0] == "CMD", test
    health = mirror.inside(test[1:], user=mirror.config["User"])
    if health.returncode != 0:
        raise SystemExit(f"HEALTHCHECK failed: {health.stderr}")
    say("   HEALTHCHECK: exit 0")
    # 4. the root is read-only even for root; /tmp holds what the mirror wrote
    probe = mirror.inside(
        [
            "/opt/mirror-kit/bin/python",
            "-c",
            "import sys\ntry: open('/opt/mirror-kit/probe', 'w')\n"
            "except OSError as e: sys.exit(e.errno)\nsys.exit(0)",
        ]
    )
    if probe.returncode != errno.EROFS:
        raise SystemExit(f"a write to the root gave exit {probe.returncode}, not EROFS")
    tmp = mirror.inside(["/usr/bin/find", "/tmp", "-mindepth", "1"]).stdout.split()
    say(f"   root read-only (EROFS); written to /tmp: {len(tmp)} entries {tmp[:4]}")
    uids = {p.uids().effective for p in mirror.processes()}
    if uids != {int(mirror.config["User"].split(":")[0])}:
        raise SystemExit(f"the mirror's processes run as {uids}, not the image's user")
    say(f"   processes: {len(mirror.processes())}, all as uid {uids.pop()}")
    facts["memory_mib"] = round(mirror.memory_mib(), 1)
    say(f"   memory (RSS of the process tree): {facts['memory_mib']} MiB")
    return facts


def run_image(api_key: str) -> dict[str, Any]:
    config = image_config()
    container = buildah("from", "--pull-never", IMAGE)
    mirror: Running | None = None
    try:
        root = buildah("mount", container)
        mirror = Running(
            root, config, {"MIRROR_KIT_PORT": str(free_port()), "MIRROR_KIT_API_KEY": api_key}
        )
        start = time.monotonic()
        mirror.wait_ready()
        facts = {"ready_s": round(time.monotonic() - start, 2)}
        say(f"   ready after {facts['ready_s']} s (workers: {mirror.env['MIRROR_KIT_WORKERS']})")
        facts |= check_running(mirror, api_key, CACHE / "image-test-report.json")
        status, seconds = mirror.stop()
        say(
            f"   SIGTERM: exit {status} after {seconds:.1f} s "
            f"(grace period {deployment_grace_s()} s)"
        )
        if status != 0:
            raise SystemExit(f"the mirror did not stop cleanly:\n{mirror.log_text()}")
        facts["stop_s"] = round(seconds, 2)
        return facts
    finally:
        if mirror is not None and mirror.outer.poll() is None:
            mirror.outer.kill()
            mirror.outer.wait()
        subprocess.run(["buildah", *STORAGE, "rm", container], capture_output=True)


def preflight() -> None:
    if os.geteuid() != 0:
        raise SystemExit("make image-test needs root (buildah's vfs storage, mounts)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing {' '.join(missing)}: apt-get install buildah debootstrap")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild-base", action="store_true", help="debootstrap again")
    parser.add_argument(
        "--reuse-image", action="store_true", help=f"run the last build of {IMAGE} again"
    )
    args = parser.parse_args(argv)
    preflight()
    timings: dict[str, float] = {}
    with phase("base: debootstrap", timings):
        rootfs = base_rootfs(args.rebuild_base)
    with phase("base: import into buildah", timings):
        base_image(rootfs, args.rebuild_base)
    if not args.reuse_image:
        with phase("build: buildah bud Containerfile", timings):
            build_image()
    with phase("run: read-only root, user 10001, checks", timings):
        facts = run_image(api_key=secrets.token_urlsafe(16))
    total = sum(timings.values())
    say(
        json.dumps(
            {
                "timings_s": {k: round(v, 1) for k, v in timings.items()},
                "total_s": round(total, 1),
                **facts,
            }
        )
    )
    say(f"image-test passed in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
