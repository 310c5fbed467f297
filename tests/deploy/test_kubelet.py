"""The kubelet shim translates only what one machine cannot share, and refuses what a cluster
would refuse (planning only: no process is started here; test_manifests_run.py runs them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .kubelet import SHIM_ENV, LocalCluster
from .manifests import Obj, containers, named, render, strimzi_secrets

STAND_INS = {
    "ytmaker-kafka-bootstrap": "127.0.0.1:19092",
    "ytmaker-db-rw": "127.0.0.1:15432",
    "minio": "127.0.0.1:19000",
}
DB_SECRET = {"ytmaker-db-app": {"password": "pw"}}
CA = "-----BEGIN CERTIFICATE-----\n(the cluster's authority)\n-----END CERTIFICATE-----\n"


def plan(objects: list[Obj], tmp_path: Path) -> LocalCluster:
    made = DB_SECRET | strimzi_secrets(objects, CA)
    cluster = LocalCluster(objects, tmp_path, STAND_INS, made, topic_prefix="t.")
    cluster.plan()
    return cluster


def env_of(objects: list[Obj], name: str) -> list[Obj]:
    found: list[Obj] = containers(named(objects, "Deployment", name))[0]["env"]
    return found


def test_services_ports_secrets_and_mounts_are_translated(tmp_path: Path) -> None:
    cluster = plan(render("dev"), tmp_path)
    gateway, api, upload = (cluster.pods[n] for n in ("gateway", "progress", "upload"))
    assert gateway.env["YTMAKER_PROGRESS_URL"] == f"http://127.0.0.1:{api.ports[8081]}"
    assert gateway.env["YTMAKER_PORT"] == str(gateway.ports[8080])
    assert gateway.env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert gateway.env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:19000"
    assert gateway.env["YTMAKER_JWT_SECRET"].startswith("dev-only-")
    assert gateway.env["YTMAKER_INSTANCE"] == "gateway-0"
    assert gateway.env["YTMAKER_KAFKA_USERNAME"] == "kafka-gateway"
    assert (
        cluster.operator_secrets["kafka-gateway"]["password"]
        == gateway.env["YTMAKER_KAFKA_PASSWORD"]
    )
    assert "YTMAKER_GEMINI_API_KEY" not in cluster.pods["script"].env  # optional, not made
    assert api.env["YTMAKER_PROGRESS_DATABASE_URL"].endswith("@127.0.0.1:15432/ytmaker")
    assert api.env["PGPASSWORD"] == "pw"
    assert api.env["YTMAKER_HEALTH_PORT"] == str(api.ports[8090])
    assert upload.env["YTMAKER_PUBLISH_DIR"] == str(tmp_path / "upload" / "published")
    for pod in cluster.pods.values():
        assert set(pod.env) >= SHIM_ENV and pod.env["YTMAKER_TOPIC_PREFIX"] == "t."
    assert len({port for pod in cluster.pods.values() for port in pod.ports.values()}) == sum(
        len(pod.ports) for pod in cluster.pods.values()
    )


def test_a_url_with_the_wrong_service_port_is_refused(tmp_path: Path) -> None:
    objects = render("dev")
    for item in env_of(objects, "gateway"):
        if item["name"] == "YTMAKER_PROGRESS_URL":
            item["value"] = "http://progress:8080"
    with pytest.raises(AssertionError, match="still names Service progress"):
        plan(objects, tmp_path)


def test_a_secret_nobody_makes_is_refused(tmp_path: Path) -> None:
    objects = render("dev")
    for item in env_of(objects, "gateway"):
        if item["name"] == "YTMAKER_JWT_SECRET":
            item["valueFrom"]["secretKeyRef"]["name"] = "ytmaker-jwt-typo"
    with pytest.raises(AssertionError, match="made by nobody"):
        plan(objects, tmp_path)


def test_a_probe_on_a_port_the_container_does_not_have_is_refused(tmp_path: Path) -> None:
    objects = render("dev")
    container = containers(named(objects, "Deployment", "render"))[0]
    container["readinessProbe"]["httpGet"]["port"] = "metrics"
    with pytest.raises(AssertionError, match="no port named 'metrics'"):
        plan(objects, tmp_path)
