"""``deploy/kubernetes`` as ``kubectl apply -k`` would send it: rendered by ``kubectl kustomize`` (offline),
every object validated strictly against the Kubernetes API's schemas (kubernetes-validate, bundled
schemas, no cluster), and run with ``podman kube play`` where podman is present, adapted only where
podman 4.3 differs from a cluster (docs/deploying.md: no Services, Secret volumes, StatefulSets or
container ports)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from denseface.rpc.credentials import Credential, write_keys_file
from tests import containers
from tests.conftest import shared

MANIFESTS = containers.ROOT / "deploy" / "kubernetes"
KUBERNETES = "1.30.0"


def render(tmp_path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/kubernetes`` with a keys file beside it (as the README says to write)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (`make containers` installs Debian's kubernetes-client)")
    work = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, work)
    write_keys_file(work / "keys.toml", [Credential(containers.SECRET_ID, containers.SECRET_KEY)])
    out = containers.run(kubectl, "kustomize", str(work)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def test_manifests_are_valid_against_the_api_schemas(tmp_path: Path) -> None:
    docs = render(tmp_path)

    def name(doc: dict[str, Any]) -> str:  # the Secret's name ends in kustomize's hash of its content
        text = str(doc["metadata"]["name"])
        return text.rsplit("-", 1)[0] if doc["kind"] == "Secret" else text

    names = sorted((d["kind"], name(d)) for d in docs)
    assert names == [
        ("ConfigMap", "denseface"),
        ("Deployment", "denseface"),
        ("HorizontalPodAutoscaler", "denseface"),
        ("Secret", "denseface-keys"),
        ("Service", "denseface"),
        ("Service", "redis"),
        ("StatefulSet", "redis"),
    ]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)

    pod = one(docs, "Deployment", "denseface")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    (secret,) = [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
    assert secret == one(docs, "Secret", secret)["metadata"]["name"]  # kustomize's hashed name, both sides
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert server["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert set(server["resources"]["limits"]) == {"cpu", "memory"}
    assert server["image"] == containers.IMAGE

    # the validation can fail: a misspelt field is refused (without strict it would pass)
    broken = copy.deepcopy(one(docs, "Deployment", "denseface"))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def for_podman(docs: list[dict[str, Any]], redis_image: str) -> list[dict[str, Any]]:
    """The rendered objects as podman 4.3's ``kube play`` can run them: no Services or HPA (ignored),
    the keys in the ConfigMap (its Secret volumes are written still base64-encoded), Redis by its pod's
    name (no Services), the StatefulSet as a Deployment with an emptyDir, no containerPort (it would
    publish the same host port twice), one CPU a pod."""
    config = copy.deepcopy(one(docs, "ConfigMap", "denseface"))
    config["data"].update(
        DENSEFACE_REDIS_URL="redis://redis-pod-0:6379/0",
        DENSEFACE_SECRET_ID=containers.SECRET_ID,
        DENSEFACE_SECRET_KEY=containers.SECRET_KEY,
        DENSEFACE_METRICS_TOKEN=containers.METRICS_TOKEN,
    )
    api = copy.deepcopy(one(docs, "Deployment", "denseface"))
    pod = api["spec"]["template"]["spec"]
    pod.pop("initContainers")  # it copies the keys from the Secret volume
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] not in ("keys", "keys-secret")]
    (server,) = pod["containers"]
    server.pop("ports")
    server["env"] = [e for e in server["env"] if e["name"] != "DENSEFACE_CREDENTIALS"]
    server["volumeMounts"] = [m for m in server["volumeMounts"] if m["name"] != "keys"]
    server["resources"]["limits"]["cpu"] = "1"
    redis = copy.deepcopy(one(docs, "StatefulSet", "redis"))
    redis["kind"] = "Deployment"
    redis["spec"].pop("serviceName")
    redis["spec"].pop("volumeClaimTemplates")
    redis_pod = redis["spec"]["template"]["spec"]
    redis_pod.pop("securityContext")  # Debian's redis-server image has no user 999
    redis_pod["volumes"] = [{"name": "data", "emptyDir": {}}]
    (store,) = redis_pod["containers"]
    store["image"] = redis_image
    store.pop("ports")
    return [config, redis, api]


def test_podman_kube_play_serves(engine: str, image: str, tmp_path: Path) -> None:
    if engine != "podman":
        pytest.skip("`podman kube play` needs podman")
    play = tmp_path / "play.yaml"
    docs = for_podman(render(tmp_path), containers.script("redis-image", timeout=300))
    play.write_text(yaml.safe_dump_all(docs))
    containers.run("podman", "kube", "play", str(play), timeout=120)
    try:
        ips = []
        for pod in ("denseface-pod-0", "denseface-pod-1"):
            infra = containers.run(
                "podman", "pod", "inspect", pod, "--format", "{{.InfraContainerID}}"
            ).stdout
            fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
            ips.append(containers.run("podman", "inspect", infra.strip(), "--format", fmt).stdout.strip())
        for ip in ips:  # ready: workers up and Redis (another pod) answering
            containers.wait_for(f"http://{ip}:8000/readyz", timeout=90)
            page = containers.metrics(f"http://{ip}:8000")
            assert containers.metric(page, "denseface_workers") == 1  # DENSEFACE_WORKERS from limits.cpu
        photo = shared("robustness", "face_recognition", "obama-240p.jpg")
        for ip in ips:
            answer = containers.dense_landmarks(containers.sdk(f"{ip}:8000"), photo)
            assert containers.points(answer["DenseFaceShapeSet"][0]) == 888  # type: ignore[index]
        # both pods counted in the one Redis: the usage of the key is 2 successful calls
        count = containers.run(
            "podman", "exec", "redis-pod-0-redis", "redis-cli", "GET", f"df:used:{containers.SECRET_ID}"
        )
        assert count.stdout.strip() == "2"
    finally:
        subprocess.run(["podman", "kube", "down", str(play)], capture_output=True, timeout=120, check=False)
