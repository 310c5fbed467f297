"""Every overlay renders, and every object it makes is valid: the built-in kinds against the
Kubernetes schemas (`kubernetes-validate --strict`: unknown fields fail), the operators' kinds
(Strimzi, KEDA, CloudNativePG) against their CRDs' schemas kept in deploy/k8s/schemas."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from .manifests import OVERLAYS, SCHEMAS, Obj, named, render

KUBERNETES_VERSION = "1.33.0"
#: The operators' kinds, each validated with its CRD's schema (SOURCES.md names the release).
CUSTOM_KINDS = {
    ("kafka.strimzi.io/v1", "Kafka"),
    ("kafka.strimzi.io/v1", "KafkaNodePool"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
    ("kafka.strimzi.io/v1", "KafkaUser"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("postgresql.cnpg.io/v1", "Cluster"),
}


@functools.cache
def _schema(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def crd_errors(obj: Obj) -> list[str]:
    """What the object's CRD schema says is wrong with it (AssertionError: no schema kept)."""
    group, _, version = obj["apiVersion"].rpartition("/")
    path = SCHEMAS / group / f"{obj['kind'].lower()}_{version}.json"
    assert path.is_file(), f"no CRD schema for {obj['apiVersion']} {obj['kind']} at {path}"
    validator = jsonschema.Draft7Validator(_schema(path))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in validator.iter_errors(obj)
    ]


def builtin_errors(obj: Obj) -> list[str]:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.path))}: {exc.message[:200]}"]
    return []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid(overlay: str) -> None:
    objects = render(overlay)
    problems = {}
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        errors = crd_errors(obj) if key in CUSTOM_KINDS else builtin_errors(obj)
        if errors:
            problems[f"{obj['kind']}/{obj['metadata']['name']}"] = errors
    assert not problems, json.dumps(problems, indent=1)


def test_prod_has_every_operator_kind() -> None:
    kinds = {(o["apiVersion"], o["kind"]) for o in render("prod")}
    assert kinds >= CUSTOM_KINDS


def test_the_validators_catch_a_misspelt_field() -> None:
    """A control: a wrong field in a Deployment, a Kafka and a ScaledObject each fails."""
    objects = render("prod")
    deployment = copy.deepcopy(named(objects, "Deployment", "render"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert builtin_errors(deployment)
    kafka = copy.deepcopy(named(objects, "Kafka", "ytmaker"))
    kafka["spec"]["kafka"]["listners"] = kafka["spec"]["kafka"].pop("listeners")
    assert crd_errors(kafka)
    scaled = copy.deepcopy(named(objects, "ScaledObject", "render"))
    scaled["spec"]["maxReplicaCount"] = "six"
    assert crd_errors(scaled)
    topic = copy.deepcopy(named(objects, "KafkaTopic", "pipeline-tasks"))
    topic["spec"]["partitons"] = 6
    assert crd_errors(topic)
    cluster = copy.deepcopy(named(objects, "Cluster", "ytmaker-db"))
    cluster["spec"]["instances"] = 0
    assert crd_errors(cluster)


def test_the_audit_job_is_valid_and_reaches_the_database() -> None:
    import yaml

    from .manifests import K8S, matches, pod_labels

    job = yaml.safe_load((K8S / "jobs" / "rebuild-read-model.yaml").read_text(encoding="utf-8"))
    assert not builtin_errors(job)
    policies = [o for o in render("prod") if o["kind"] == "NetworkPolicy"]
    to_database = [
        p
        for p in policies
        if any(
            peer.get("podSelector", {}).get("matchLabels", {}).get("cnpg.io/cluster")
            for rule in p["spec"].get("egress", [])
            for peer in rule.get("to", [])
        )
    ]
    assert to_database and all(
        matches(p["spec"]["podSelector"], pod_labels(job)) for p in to_database
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][0] == "ytmaker-progress" and container["args"][-1].endswith(
        "/ytmaker"
    )
