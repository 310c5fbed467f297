"""deploy/docker/compose.yaml runs what the Kubernetes dev overlay runs: one compose service per
Deployment with the same image, command, environment (the dev Secrets' values included),
readiness check, stop grace and hardening; the services it needs are named like the
Kubernetes Services the environment names."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from .manifests import (
    ROOT,
    container_env,
    containers,
    named,
    ours,
    pod_spec,
    port_number,
    render,
    secret_values,
)

COMPOSE = ROOT / "deploy" / "docker" / "compose.yaml"
#: The Kafka user of each part (decision 0122), which compose's user-less broker does without.
KAFKA_USER_SETTINGS = "YTMAKER_KAFKA_"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def test_every_deployment_is_a_compose_service_with_the_same_settings() -> None:
    objects = render("dev")
    services = compose()["services"]
    secrets = secret_values(objects)
    db_password = services["ytmaker-db-rw"]["environment"]["POSTGRES_PASSWORD"]
    for deployment in ours(objects):
        name = deployment["metadata"]["name"]
        assert name in services, f"compose has no service {name}"
        service = services[name]
        container = containers(deployment)[0]
        assert service["image"] == container["image"], name
        image = container["image"].split("/", 1)[1].split(":", 1)[0]
        assert service["build"]["dockerfile"] == f"services/{image}/Dockerfile"
        assert (ROOT / service["build"]["dockerfile"]).is_file()
        assert service["command"] == [*container["command"], *container.get("args", [])], name
        expected: dict[str, str | None] = {}
        for var in container_env(objects, container).values():
            if var.name.startswith(KAFKA_USER_SETTINGS):
                continue  # compose's broker has no users (one host, as `make run`)
            if var.value is not None:
                expected[var.name] = var.value
            elif var.secret is not None:
                secret, key = var.secret
                if secret in secrets:
                    expected[var.name] = secrets[secret][key]
                elif secret == "ytmaker-db-app":  # made by CloudNativePG in the cluster
                    expected[var.name] = db_password
                else:
                    assert var.optional, f"{name}: {var.name} from {secret}, made by nobody"
            else:
                expected[var.name] = None  # a fieldRef: any value
        environment = {k: str(v) for k, v in service["environment"].items()}
        assert set(environment) == set(expected), (
            f"{name}: only in compose {sorted(set(environment) - set(expected))}, "
            f"only in the manifests {sorted(set(expected) - set(environment))}"
        )
        for variable, value in expected.items():
            if value is not None:
                assert environment[variable] == value, f"{name}: {variable}"
        # Readiness, stop grace, hardening.
        probe = container["readinessProbe"]["httpGet"]
        port = port_number(container, probe["port"])
        check = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{port}{probe['path']}" in check, name
        assert (
            service["stop_grace_period"]
            == f"{pod_spec(deployment)['terminationGracePeriodSeconds']}s"
        )
        security = pod_spec(deployment)["securityContext"]
        assert service["user"] == f"{security['runAsUser']}:{security['runAsGroup']}"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        volumes = {v["name"]: v for v in pod_spec(deployment).get("volumes", [])}
        mounts = [  # the emptyDirs (the Kafka authority's Secret is for the user-less broker)
            m["mountPath"]
            for m in container.get("volumeMounts", [])
            if "emptyDir" in volumes[m["name"]]
        ]
        assert sorted(service["tmpfs"]) == sorted(mounts), name


def test_the_backing_services_carry_the_kubernetes_service_names() -> None:
    objects = render("dev")
    services = compose()["services"]
    config = named(objects, "ConfigMap", "ytmaker-config")["data"]
    artifacts = named(objects, "ConfigMap", "ytmaker-artifacts")["data"]
    kafka_host = config["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0]
    assert kafka_host in services
    advertised = services[kafka_host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"] in advertised
    assert services[kafka_host]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    url = container_env(objects, containers(named(objects, "Deployment", "progress"))[0])
    database_url = url["YTMAKER_PROGRESS_DATABASE_URL"].value or ""
    match = re.match(r"postgresql\+psycopg://(\w+)@([\w-]+):5432/(\w+)$", database_url)
    assert match, database_url
    user, host, database = match.groups()
    assert host in services
    db_env = services[host]["environment"]
    assert (db_env["POSTGRES_USER"], db_env["POSTGRES_DB"]) == (user, database)
    s3_host = re.match(r"http://([\w-]+):9000$", artifacts["AWS_ENDPOINT_URL_S3"])
    assert s3_host and s3_host.group(1) in services
    bucket = artifacts["YTMAKER_ARTIFACT_URL"].removeprefix("s3://").split("/")[0]
    assert f"dev/{bucket}" in " ".join(services["minio-bucket"]["command"])
    topics = services["topics"]["environment"]
    for key in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "YTMAKER_TOPIC_PARTITIONS",
        "YTMAKER_TOPIC_REPLICATION_FACTOR",
    ):
        assert str(topics[key]) == config[key]


@pytest.mark.parametrize("name", ["ytmaker-kafka-bootstrap", "ytmaker-db-rw", "minio"])
def test_third_party_images_are_pinned(name: str) -> None:
    image = compose()["services"][name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and tag and tag != "latest"
