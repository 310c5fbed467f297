"""The manifests run: the dev overlay rendered, each of our Deployments started as a local
process with exactly the environment its container would get (tests/deploy/kubelet.py says
what is translated and why), on a Kafka broker with users and ACLs, the suite's PostgreSQL and
S3 server standing in for Strimzi's cluster, CloudNativePG's and MinIO; the KafkaTopic and
KafkaUser resources made as Strimzi's operators would (each user granted its ACLs, its
password in a Secret); every readiness probe answers; a project submitted through the gateway
completes, and its video comes back from the S3 store through the gateway, with ranges. A
manifest that configures a service wrongly (a port, a Service name, a setting, a Secret, an
ACL a service needs) fails here. Bounded: four minutes at most.

With YTMAKER_TEST_IMAGES=1 the same test also runs each pod in its built image (buildah):
`deploy/docker/base.sh && PYTHON_IMAGE=localhost/ytmaker-python:bookworm deploy/docker/build.sh`
first (docs/decisions/0073)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.components import unavailable
from tests.support.kafka import grant, new_secured_broker
from tests.support.postgres import PostgresServer
from tests.support.s3 import S3Server
from ytmaker_dev.kafka import DevKafkaError, LocalKafka
from ytmaker_gateway.auth import TokenConfig, mint_token
from ytmaker_render.adapters import probe
from ytmaker_render.adapters.ffmpeg import ffmpeg_executable

from .kubelet import SHIM_ENV, LocalCluster
from .manifests import (
    Obj,
    container_env,
    containers,
    named,
    of_kind,
    ours,
    render,
    strimzi_secrets,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]

READY_TIMEOUT = 120.0
READY_AS_PROCESS_S = 25.0
RUN_TIMEOUT = 150.0


def create_database(server: PostgresServer, database: str, owner: str) -> None:
    """What CloudNativePG's `bootstrap.initdb` makes: the owner role and its database."""
    import psycopg

    dsn = f"host={server.host} port={server.port} user={server.user} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone():
            conn.execute(f'CREATE ROLE "{owner}" LOGIN')
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}" OWNER "{owner}"')


def kafka_with_users(objects: list[Obj], data_dir: Path) -> tuple[LocalKafka, dict[str, Any]]:
    """What Strimzi's cluster and user operators make of the Kafka and KafkaUser resources: a
    broker that wants SCRAM users over TLS and enforces ACLs, one user per KafkaUser with its
    ACLs, and the Secrets: the users' passwords and the cluster's authority."""
    names = [user["metadata"]["name"] for user in of_kind(objects, "KafkaUser")]
    users = {name: secrets.token_urlsafe(16) for name in ["admin", *names]}
    broker = new_secured_broker(data_dir, users)
    try:
        broker.start(timeout=120.0)
    except DevKafkaError as exc:
        unavailable(f"cannot start a local Kafka broker with users: {exc}")
    assert broker.tls is not None
    made = strimzi_secrets(objects, broker.tls.ca_file.read_text())
    for name in names:
        made[name]["password"] = users[name]
    for user in of_kind(objects, "KafkaUser"):
        grant(broker, user["metadata"]["name"], user["spec"]["authorization"]["acls"])
    return broker, made


async def create_topics(broker: LocalKafka, topics: list[dict[str, object]]) -> None:
    """What Strimzi's topic operator does with the KafkaTopic resources."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=broker.bootstrap_servers, **broker.admin_options()
    )
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name=str(spec["topicName"]),
                    num_partitions=int(spec["partitions"]),  # type: ignore[call-overload]
                    replication_factor=int(spec["replicas"]),  # type: ignore[call-overload]
                    topic_configs={k: str(v) for k, v in spec["config"].items()},  # type: ignore[attr-defined]
                )
                for spec in topics
            ]
        )
    finally:
        await admin.close()


#: `processes` always; `images` (each pod in its built image, `buildah run`) only when asked
#: with YTMAKER_TEST_IMAGES=1 after deploy/docker/build.sh: `make test` never builds images.
MODES = ["processes", *(["images"] if os.environ.get("YTMAKER_TEST_IMAGES") == "1" else [])]


@pytest.fixture(params=MODES)
def cluster(
    request: pytest.FixtureRequest,
    postgres_server: PostgresServer,
    s3_server: S3Server,
    tmp_path: Path,
) -> Iterator[LocalCluster]:
    objects = render("dev")
    kafka, user_secrets = kafka_with_users(objects, tmp_path / "kafka")
    db = named(objects, "Cluster", "ytmaker-db")["spec"]["bootstrap"]["initdb"]
    create_database(postgres_server, db["database"], db["owner"])
    artifacts = named(objects, "ConfigMap", "ytmaker-artifacts")["data"]["YTMAKER_ARTIFACT_URL"]
    bucket = urlparse(artifacts).netloc
    client = s3_server.client()
    if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=bucket)  # what dev's minio-bucket Job does
    asyncio.run(create_topics(kafka, [t["spec"] for t in of_kind(objects, "KafkaTopic")]))
    local = LocalCluster(
        objects,
        tmp_path / "pods",
        stand_ins={
            "ytmaker-kafka-bootstrap": kafka.bootstrap_servers,
            "ytmaker-db-rw": f"{postgres_server.host}:{postgres_server.port}",
            "minio": s3_server.endpoint.removeprefix("http://"),
        },
        operator_secrets={
            "ytmaker-db-app": {"username": "ytmaker", "password": "test-db-password"},
            **user_secrets,
        },
        topic_prefix="",  # a broker of its own: the KafkaUsers' ACLs name the real topics
        images=request.param == "images",
    )
    try:
        yield local
    finally:
        local.stop()
        kafka.stop()


def test_the_dev_overlay_runs_a_project_to_a_video(cluster: LocalCluster, tmp_path: Path) -> None:
    started = time.monotonic()
    pods = cluster.plan()
    objects = cluster.objects
    assert set(pods) == {d["metadata"]["name"] for d in ours(objects)}
    for deployment in ours(objects):
        pod = pods[deployment["metadata"]["name"]]
        given = container_env(objects, containers(deployment)[0])
        unset_optional = {
            n for n, v in given.items() if v.secret and v.optional and n not in pod.env
        }
        shim = {"YTMAKER_TOPIC_PREFIX"} if cluster.images else SHIM_ENV
        assert set(pod.env) == (set(given) - unset_optional) | shim
    gateway = pods["gateway"]
    assert gateway.env["YTMAKER_PROGRESS_URL"] == f"http://127.0.0.1:{pods['progress'].ports[8081]}"

    cluster.start()
    ready = cluster.wait_ready(READY_TIMEOUT)
    print(f"\nready after (s): { {k: round(v, 1) for k, v in sorted(ready.items())} }")
    if not cluster.images:  # a pod is ready in ~7 s; one client's TLS goodbye held it 30 (0142)
        slow = {name: round(s, 1) for name, s in ready.items() if s > READY_AS_PROCESS_S}
        assert not slow, f"pods ready late: {slow}\n{cluster.log_tails()}"

    base = f"http://127.0.0.1:{gateway.ports[8080]}"
    token = mint_token(TokenConfig(secret=gateway.env["YTMAKER_JWT_SECRET"]), "alice")
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=15) as http:
        created = http.post(
            "/api/v1/projects",
            json={
                "title": "Why the sea rises twice a day",
                "content": "Twice a day the sea creeps up the beach and slips away again. "
                "The moon pulls on the water facing it, and the Earth turns through the bulge.",
                "settings": {"segments": 2, "target_length_seconds": 10},
            },
        )
        assert created.status_code in (200, 201), created.text
        task_id = created.json()["task_id"]
        deadline = time.monotonic() + RUN_TIMEOUT
        state: dict[str, object] = {}
        while state.get("status") not in ("completed", "failed", "cancelled"):
            cluster.check_alive()
            assert time.monotonic() < deadline, f"run not finished: {state}\n{cluster.log_tails()}"
            answer = http.get(f"/api/v1/progress/{task_id}")
            if answer.status_code == 200:
                state = answer.json()
            time.sleep(0.5)
        assert state["status"] == "completed", f"{state}\n{cluster.log_tails()}"
        print(f"run completed {time.monotonic() - started:.1f}s after the pods started")

        video = http.get(f"/api/v1/artifacts/{task_id}/video")
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        part = http.get(f"/api/v1/artifacts/{task_id}/video", headers={"Range": "bytes=0-1023"})
        assert part.status_code == 206 and part.content == video.content[:1024]
    path = tmp_path / "video.mp4"
    path.write_bytes(video.content)
    media = asyncio.run(probe.inspect(ffmpeg_executable(), path))
    assert (media.duration_seconds or 0) > 1, media
    assert media.first("video") is not None and media.first("audio") is not None, media
    # The video is in the S3 store, where render put it, not on any pod's disk.
    keys = [
        o["Key"]
        for o in cluster_s3_objects(cluster, task_id)
        if o["Key"].endswith("render/video.mp4")
    ]
    assert keys, "render's video is not in the bucket"

    stopped = cluster.stop()
    for name, (code, seconds) in stopped.items():
        assert code == 0, f"{name} exited {code} on SIGTERM\n{cluster.log_tails()}"
        assert seconds <= pods[name].grace_s
    print(f"stopped (s): { {k: round(v[1], 1) for k, v in sorted(stopped.items())} }")


def cluster_s3_objects(cluster: LocalCluster, task_id: str) -> list[dict[str, str]]:
    import boto3

    env = cluster.pods["render"].env
    url = urlparse(env["YTMAKER_ARTIFACT_URL"])
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    prefix = f"{url.path.strip('/')}/{task_id}/"
    listed = client.list_objects_v2(Bucket=url.netloc, Prefix=prefix)
    return list(listed.get("Contents", []))
