"""The container image definition and the Kubernetes manifests under deploy/.

kustomize itself is not needed: ``render`` builds a kustomization the way kustomize
does for the features used here (resources, namespace, images) and refuses any other
field, so a manifest change that it would render differently fails here first. Each
object is validated against the Kubernetes API's own schemas (kubernetes-validate,
strict: unknown fields fail), for the oldest and newest versions it ships. Then the
properties a cluster would not check: non-root, read-only root, probes on routes the
mirror serves, ports and variable names that agree with the kit and the Containerfile.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mirror_kit import cli, options
from mirror_kit.client import MirrorClient
from mirror_kit.protocol.errors import RemoteMirrorError
from mirror_kit.server import ServerSettings, create_app, workers
from mirror_kit.sources import StoreConfig

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
OVERLAYS = sorted(p.parent for p in (DEPLOY / "overlays").glob("*/kustomization.yaml"))
KUSTOMIZATIONS = [BASE, *OVERLAYS]
CONTAINERFILE = ROOT / "Containerfile"
#: the oldest and the newest Kubernetes API the validator has schemas for
K8S_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
KUSTOMIZE_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images"}
CLUSTER_SCOPED = {"Namespace"}
SECRET = "a-shared-secret-of-24-ch"

_spec = importlib.util.spec_from_file_location("entrypoint", DEPLOY / "image" / "entrypoint.py")
assert _spec is not None and _spec.loader is not None
entrypoint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(entrypoint)


# --- rendering ------------------------------------------------------------------------


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build directory`` prints, for the fields used here."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZE_FIELDS
    if unknown:
        raise ValueError(f"{directory}: kustomization fields not rendered here: {unknown}")
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += render(path)
        else:
            objects += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    namespace = kustomization.get("namespace")
    for obj in objects:
        if namespace and obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
        for image in kustomization.get("images", []):
            _set_image(obj, image)
    return objects


def _set_image(obj: dict[str, Any], image: dict[str, str]) -> None:
    """kustomize's ``images`` transformer: a new name and tag for matching containers."""
    if obj["kind"] != "Deployment":
        return
    for container in _pod_spec(obj)["containers"]:
        name, _, tag = container["image"].partition(":")
        if name == image["name"]:
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def _pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(BASE)


@pytest.fixture(scope="module")
def container(base: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _pod_spec(one(base, "Deployment"))["containers"]
    assert len(containers) == 1
    return containers[0]


def containerfile() -> dict[str, list[str]]:
    """The Containerfile's instructions of the last stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    stages: list[dict[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append({})
        if stages:
            stages[-1].setdefault(instruction.upper(), []).append(rest.strip())
    return stages[-1]


def containerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in containerfile()["ENV"]:
        env.update(item.split("=", 1) for item in shlex.split(rest))
    return env


# --- the kustomizations and the schemas -------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_file_is_listed_in_its_kustomization(directory: Path) -> None:
    listed = {
        entry
        for entry in yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]
        if (directory / entry).is_file()
    }
    on_disk = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_render_refuses_what_it_cannot_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources: []\npatches:\n  - path: x.yaml\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match="patches"):
        render(tmp_path)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_objects_validate_against_the_kubernetes_api_schemas(directory: Path, version: str) -> None:
    objects = render(directory)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: _pod_spec(d)["containers"][0]["ports"][0].update(containerPort="http"),
        lambda d: _pod_spec(d)["containers"][0]["securityContext"].update(readOnlyRootFS=True),
        lambda d: d["spec"].pop("selector"),
    ],
    ids=["wrong type", "misspelt field", "missing required field"],
)
def test_the_validation_rejects_a_broken_deployment(base: list[dict[str, Any]], break_it) -> None:
    broken = copy.deepcopy(one(base, "Deployment"))
    break_it(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_the_overlay_sets_namespace_and_image() -> None:
    objects = render(DEPLOY / "overlays" / "example")
    namespace = one(objects, "Namespace")["metadata"]["name"]
    assert all(
        o["metadata"].get("namespace") == namespace for o in objects if o["kind"] != "Namespace"
    )
    image = _pod_spec(one(objects, "Deployment"))["containers"][0]["image"]
    assert image == "registry.example.com/mirror-kit:0.1.0"
    # the placeholder Secret carries what the Deployment reads from it
    secret = one(objects, "Secret")
    assert set(secret["stringData"]) == {"MIRROR_KIT_API_KEY"}


# --- security -------------------------------------------------------------------------


def test_pods_run_non_root_read_only_without_capabilities(
    base: list[dict[str, Any]], container: dict[str, Any]
) -> None:
    pod = _pod_spec(one(base, "Deployment"))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert "hostNetwork" not in pod and "hostPID" not in pod
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    # the one writable path is an emptyDir, bounded
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {"/tmp"}
    assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"]


def test_the_image_user_is_the_pods_non_root_user(base: list[dict[str, Any]]) -> None:
    pod = _pod_spec(one(base, "Deployment"))
    user, _, group = containerfile()["USER"][-1].partition(":")
    assert int(user) == pod["securityContext"]["runAsUser"] != 0
    assert int(group) == pod["securityContext"]["runAsGroup"]


def test_every_container_has_requests_and_limits(container: dict[str, Any]) -> None:
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory"}


def test_no_service_links_in_the_mirrors_variable_namespace(base: list[dict[str, Any]]) -> None:
    """A Service named mirror-kit would set MIRROR_KIT_PORT=tcp://...: --port would fail."""
    service = one(base, "Service")["metadata"]["name"]
    assert service.upper().replace("-", "_") + "_" == options.ENV_PREFIX
    assert _pod_spec(one(base, "Deployment"))["enableServiceLinks"] is False


# --- agreement with the kit -----------------------------------------------------------


def _probe_paths(container: dict[str, Any]) -> set[str]:
    return {
        container[probe]["httpGet"]["path"]
        for probe in ("readinessProbe", "livenessProbe")
        if probe in container
    }


async def test_probe_paths_answer_even_with_a_shared_secret(
    aiohttp_client, container: dict[str, Any]
) -> None:
    assert {"readinessProbe", "livenessProbe"} <= set(container)
    paths = _probe_paths(container) | {_healthcheck_path()}
    client = await aiohttp_client(create_app(None, ServerSettings(auth_secret="s" * 24)))
    answers = {
        "/healthz": {"status": "ok"},
        "/readyz": {"status": "ready", "stores": {"default": "ok"}},
    }
    for path in paths:
        response = await client.get(path)
        assert response.status == 200, path
        assert await response.json() == answers[path]
    refused = await client.post("/api/connection", json={"_type": "TestConnectionRequest"})
    assert refused.status == 403  # the secret is on: only the probe paths are open


def _healthcheck_path() -> str:
    (healthcheck,) = containerfile()["HEALTHCHECK"]
    match = re.search(r"http://127\.0\.0\.1:[^/]+(/\w+)", healthcheck)
    assert match, healthcheck
    return match.group(1)


def test_ports_agree(base: list[dict[str, Any]], container: dict[str, Any]) -> None:
    (port,) = container["ports"]
    settings = one(base, "ConfigMap")["data"]
    (service_port,) = one(base, "Service")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    assert service_port["port"] == port["containerPort"] == 7007  # the Mirror URL's
    assert int(settings["MIRROR_KIT_PORT"]) == port["containerPort"]
    assert containerfile()["EXPOSE"] == [str(port["containerPort"])]
    assert containerfile_env()["MIRROR_KIT_PORT"] == str(port["containerPort"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port["name"]


def test_selectors_and_the_autoscaler_find_the_pods(base: list[dict[str, Any]]) -> None:
    deployment = one(base, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one(base, "Service")["spec"]["selector"].items() <= labels.items()
    pdb = one(base, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = one(base, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"]  # applying it again would undo the HPA
    assert hpa["minReplicas"] > pdb["spec"]["maxUnavailable"]  # a drain leaves one serving


def _variable_names(objects: list[dict[str, Any]], container: dict[str, Any]) -> set[str]:
    names = set(one(objects, "ConfigMap")["data"])
    names |= {e["name"] for e in container.get("env", [])}
    names |= {n for o in objects if o["kind"] == "Secret" for n in o.get("stringData", {})}
    return names | set(containerfile_env()) - {"PATH", "HOME", "TMPDIR"}


def test_every_variable_the_manifests_set_is_one_the_kit_reads(
    container: dict[str, Any],
) -> None:
    objects = render(DEPLOY / "overlays" / "example")
    names = _variable_names(objects, _pod_spec(one(objects, "Deployment"))["containers"][0])
    mirror = {n for n in names if n.startswith(options.ENV_PREFIX)}
    assert mirror and not cli.unknown_variables(dict.fromkeys(mirror, "1"))
    assert names - mirror <= {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
    # the ConfigMap and the Secret reach the container whole
    sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {one(objects, "ConfigMap")["metadata"]["name"], "mirror-kit-secrets"}
    assert one(objects, "Secret")["metadata"]["name"] == "mirror-kit-secrets"


def served_with(environ: dict[str, str], extra: list[str] | None = None) -> Any:
    """What the image's ``serve`` runs with in ``environ``: (Listen, ServerSettings,
    StoreConfig)."""
    args = cli._parser().parse_args(entrypoint.serve_argv(environ, extra or []))
    return cli.configuration(args, environ)


def test_the_configmap_settings_parse_into_serve_options(base: list[dict[str, Any]]) -> None:
    settings = one(base, "ConfigMap")["data"]
    listen, server, stores = served_with(settings)
    assert listen.bind_all is True
    assert listen.port == int(settings["MIRROR_KIT_PORT"])
    assert listen.workers == int(settings["MIRROR_KIT_WORKERS"])
    assert server.limits.max_points == int(settings["MIRROR_KIT_MAX_POINTS"])
    assert server.request_timeout_s == float(settings["MIRROR_KIT_REQUEST_TIMEOUT"])
    assert stores.default == settings["MIRROR_KIT_SOURCE"]


def test_the_grace_period_covers_the_mirrors_shutdown(
    base: list[dict[str, Any]], container: dict[str, Any]
) -> None:
    pod = _pod_spec(one(base, "Deployment"))
    settings = one(base, "ConfigMap")["data"]
    pre_stop = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    sleep_s = float(re.search(r"sleep\((\d+(?:\.\d+)?)\)", pre_stop).group(1))
    graceful_s = workers.gunicorn_options(ServerSettings(), "0.0.0.0", 7007, 2)["graceful_timeout"]
    slowest = max(float(settings["MIRROR_KIT_REQUEST_TIMEOUT"]), graceful_s)
    assert pod["terminationGracePeriodSeconds"] > sleep_s + slowest
    # the preStop hook runs the image's own interpreter (no shell in the command)
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == _image_python()


def _image_python() -> str:
    command = yaml.safe_load(containerfile()["ENTRYPOINT"][-1])
    assert command[1] == "/opt/mirror-kit/entrypoint.py"
    assert "COPY deploy/image/entrypoint.py /opt/mirror-kit/entrypoint.py" in (
        CONTAINERFILE.read_text()
    )
    return command[0]


def test_the_image_never_needs_a_writable_root() -> None:
    env = containerfile_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == env["TMPDIR"] == "/tmp"
    assert "ARG PYTHON_BASE" in CONTAINERFILE.read_text()  # the base is a build argument


# --- the entrypoint -------------------------------------------------------------------


def test_serve_reads_every_setting_from_the_environment() -> None:
    environ = {
        "MIRROR_KIT_API_KEY": "k3y",
        "MIRROR_KIT_MAX_ANSWER_POINTS": "100",
        "MIRROR_KIT_AUTH_SECRET": "s" * 24,
        "MIRROR_KIT_PROMETHEUS_URL": "",  # empty: unset
        "MIRROR_KIT_PORT": "7011",
        "MIRROR_KIT_MAX_UNSENT_BYTES": "4096",
        "OTHER": "x",
    }
    argv = entrypoint.serve_argv(environ, ["--port", "7010"])
    assert argv == ["serve", "--bind-all", "--port", "7010"]  # no value on the command line
    listen, server, stores = served_with(environ, ["--port", "7010"])
    assert listen.port == 7010  # a flag beats its variable
    assert listen.address == "0.0.0.0"
    assert server.api_key == "k3y" and server.auth_secret == "s" * 24
    assert server.limits.max_answer_points == 100 and server.max_unsent_bytes == 4096
    assert stores == StoreConfig()  # the synthetic store only
    # every flag has its variable, named after it
    for option in cli.LISTEN_OPTIONS + cli.SERVER_OPTIONS + cli.STORE_OPTIONS:
        assert option.env == "MIRROR_KIT_" + option.flag[2:].upper().replace("-", "_")
    assert {o.env for o in cli.STORE_OPTIONS} == set(workers.STORE_ENVIRONMENT)


def test_entrypoint_switches_and_host() -> None:
    assert served_with({"MIRROR_KIT_BIND_ALL": "no"})[0].address == "127.0.0.1"
    assert entrypoint.serve_argv({"MIRROR_KIT_HOST": "127.0.0.1"}) == ["serve"]
    assert served_with({"MIRROR_KIT_HOST": "::1"})[0].address == "::1"
    with pytest.raises(ValueError, match="MIRROR_KIT_BIND_ALL='maybe'"):
        served_with({"MIRROR_KIT_BIND_ALL": "maybe"})
    with pytest.raises(ValueError, match=re.escape("MIRROR_KIT_PORT='tcp://10.0.0.1:7007'")):
        served_with({"MIRROR_KIT_PORT": "tcp://10.0.0.1:7007"})  # a Kubernetes service link
    assert cli.unknown_variables({"MIRROR_KIT_PROT": "1", "MIRROR_KIT_PORT": "1"}) == [
        "MIRROR_KIT_PROT"
    ]


def test_entrypoint_serves_as_configured(unused_tcp_port: int) -> None:
    """The entrypoint as the image runs it, on loopback: key, port, secret from variables."""
    env = {
        **os.environ,
        "MIRROR_KIT_HOST": "127.0.0.1",
        "MIRROR_KIT_PORT": str(unused_tcp_port),
        "MIRROR_KIT_API_KEY": "from-the-environment",
        "MIRROR_KIT_WORKERS": "1",
        "MIRROR_KIT_PROT": "typo",
        "MIRROR_KIT_AUTH_SECRET": SECRET,  # read by the kit itself, not a flag
    }
    process = subprocess.Popen(
        [sys.executable, str(DEPLOY / "image" / "entrypoint.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        assert f"127.0.0.1:{unused_tcp_port}" in banner, process.stderr.read()
        url = f"http://127.0.0.1:{unused_tcp_port}"
        with MirrorClient(f"{url}/{SECRET}", "from-the-environment") as client:
            assert client.test_connection().ok
        with (
            MirrorClient(url, "from-the-environment") as client,
            pytest.raises(RemoteMirrorError, match="shared secret"),
        ):
            client.test_connection()  # no secret: refused
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "MIRROR_KIT_PROT is no `serve` flag" in stderr


def test_the_configmap_limits_are_the_kits_defaults(base: list[dict[str, Any]]) -> None:
    """The ConfigMap says so: a default changed in the kit must be changed there too."""
    settings = ServerSettings.from_env(one(base, "ConfigMap")["data"])
    assert settings == ServerSettings()


async def test_the_scrape_annotations_name_the_metrics_route(aiohttp_client) -> None:
    deployment = one(render(BASE), "Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    (port,) = _pod_spec(deployment)["containers"][0]["ports"]
    assert int(annotations["prometheus.io/port"]) == port["containerPort"]
    client = await aiohttp_client(create_app(None, ServerSettings()))
    response = await client.get(annotations["prometheus.io/path"])
    assert response.status == 200
    assert "mirror_kit_requests_total" in await response.text()
