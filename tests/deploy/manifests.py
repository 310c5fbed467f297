"""Reading deploy/k8s as a cluster would: every overlay rendered with `kubectl kustomize`, and
what each Deployment's container would get as its environment (tests/deploy/*).

`render(overlay)` calls kubectl once per overlay and session; without kubectl the test is
skipped locally and fails in CI (tests/support/components.py).
"""

from __future__ import annotations

import base64
import functools
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.components import unavailable

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SCHEMAS = K8S / "schemas"
#: Images that are ours (built from services/*/Dockerfile), by repository name.
OUR_IMAGE_PREFIX = "ytmaker/"

Obj = dict[str, Any]


@functools.cache
def _kustomize(path: str) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        unavailable("kubectl is not installed (it renders deploy/k8s with its kustomize)")
    done = subprocess.run(
        [kubectl, "kustomize", path], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{done.stderr}")
    return done.stdout


def render(overlay: str) -> list[Obj]:
    """Every object of `deploy/k8s/overlays/<overlay>` (a fresh copy each call)."""
    return [o for o in yaml.safe_load_all(_kustomize(str(K8S / "overlays" / overlay))) if o]


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def ours(objects: list[Obj]) -> list[Obj]:
    """The Deployments that run one of our images."""
    return [
        d
        for d in of_kind(objects, "Deployment")
        if containers(d)[0]["image"].startswith(OUR_IMAGE_PREFIX)
    ]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Obj) -> list[Obj]:
    found: list[Obj] = pod_spec(workload)["containers"]
    return found


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels / matchExpressions, or a plain map) against labels."""
    plain = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if not all(labels.get(k) == v for k, v in plain.items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, op, values = expression["key"], expression["operator"], expression.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def secret_values(objects: list[Obj]) -> dict[str, dict[str, str]]:
    """The Secrets the overlay itself makes (dev), decoded: {name: {key: value}}."""
    values: dict[str, dict[str, str]] = {}
    for secret in of_kind(objects, "Secret"):
        data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        data |= secret.get("stringData", {})
        values[secret["metadata"]["name"]] = data
    return values


def strimzi_secrets(objects: list[Obj], ca_certificate: str) -> dict[str, dict[str, str]]:
    """The Secrets Strimzi's operators make: one per KafkaUser, named like it, with a new
    SCRAM password (key `password`), and each Kafka cluster's authority (`<cluster>-cluster-
    ca-cert`, key `ca.crt`)."""
    made = {
        user["metadata"]["name"]: {"password": secrets.token_urlsafe(24)}
        for user in of_kind(objects, "KafkaUser")
    }
    for kafka in of_kind(objects, "Kafka"):
        made[f"{kafka['metadata']['name']}-cluster-ca-cert"] = {"ca.crt": ca_certificate}
    return made


@dataclass(frozen=True)
class EnvVar:
    """One variable as the kubelet would set it: a literal, or where its value comes from."""

    name: str
    value: str | None = None
    secret: tuple[str, str] | None = None  # (Secret name, key)
    optional: bool = False
    field: str | None = None  # a fieldRef path such as metadata.name


def container_env(objects: list[Obj], container: Obj) -> dict[str, EnvVar]:
    """The container's environment in the kubelet's order: `envFrom` first, then `env` (which
    wins). Raises AssertionError for a reference to a ConfigMap the overlay does not have or a
    source this reader does not know (the test must not guess)."""
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in of_kind(objects, "ConfigMap")}
    env: dict[str, EnvVar] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in configmaps, f"envFrom names a ConfigMap that is not there: {name}"
            env |= {k: EnvVar(k, str(v)) for k, v in configmaps[name].items()}
        else:
            raise AssertionError(f"unexpected envFrom source {source}")
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = EnvVar(name, str(item["value"]))
            continue
        ref = item.get("valueFrom", {})
        if "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            env[name] = EnvVar(
                name,
                secret=(key_ref["name"], key_ref["key"]),
                optional=bool(key_ref.get("optional", False)),
            )
        elif "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"]
            env[name] = EnvVar(name, str(configmaps[key_ref["name"]][key_ref["key"]]))
        elif "fieldRef" in ref:
            env[name] = EnvVar(name, field=ref["fieldRef"]["fieldPath"])
        else:
            raise AssertionError(f"unexpected env source for {name}: {item}")
    return env


def port_number(container: Obj, port: int | str) -> int:
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert numbers, f"container {container['name']} has no port named {port!r}"
    return int(numbers[0])


def all_containers(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, container) for every Deployment, StatefulSet and Job."""
    for workload in objects:
        if workload["kind"] in ("Deployment", "StatefulSet", "Job"):
            for container in containers(workload):
                yield workload, container
