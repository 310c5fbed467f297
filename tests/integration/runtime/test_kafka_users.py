"""Services on a broker that wants users (decision 0122): a broker with SCRAM-SHA-512 users
over TLS and ACLs, as a production cluster is; every kind of client the services make (the
producer, the group-less reader, the librdkafka follower, the topic bootstrap) signs in with
the user its settings name and can do what that user's ACLs allow, and no more; a missing
user, a wrong password, a broker it cannot verify or a missing ACL is an error, never a
silent wait."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from tests.support.components import unavailable
from tests.support.kafka import grant, new_secured_broker
from ytmaker_cli.main import main
from ytmaker_dev.kafka import DevKafkaError, LocalKafka
from ytmaker_shared.kafka import EventProducer, ensure_topics, wait_for_broker
from ytmaker_shared.kafka.follower import LogFollower
from ytmaker_shared.kafka.reader import LogReader
from ytmaker_shared.kafka.users import KAFKA_USERS
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import Topic

pytestmark = pytest.mark.kafka

PREFIX = "users."
#: The test's own users, and two of ytmaker's that no manifests' run signs in with.
PEOPLE = ("kafka-operator", "kafka-audit")
USERS = {name: secrets.token_urlsafe(16) for name in ("admin", "writer", "reader", *PEOPLE)}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    kafka = new_secured_broker(tmp_path_factory.mktemp("kafka-users"), USERS)
    try:
        kafka.start(timeout=120.0)
    except DevKafkaError as exc:
        unavailable(f"cannot start a local Kafka broker with users: {exc}")
    try:
        script = f"{PREFIX}{Topic.SCRIPT.value}"
        grant(
            kafka,
            "writer",
            [{"resource": {"type": "topic", "name": script}, "operations": ["Write", "Describe"]}],
        )
        grant(
            kafka,
            "reader",
            [{"resource": {"type": "topic", "name": script}, "operations": ["Read", "Describe"]}],
        )
        for person in PEOPLE:
            grant(kafka, person, KAFKA_USERS[person].acls())
        asyncio.run(ensure_topics(signed_in(kafka, "admin")))
        real = signed_in(kafka, "admin").model_copy(update={"topic_prefix": ""})
        asyncio.run(ensure_topics(real))  # the production names their ACLs give
        yield kafka
    finally:
        kafka.stop()


def signed_in(broker: LocalKafka, user: str, password: str | None = None) -> ServiceSettings:
    changes: dict[str, object] = {
        "topic_prefix": PREFIX,
        "broker_startup_wait_s": 5.0,
        "producer_delivery_timeout_s": 10.0,
    }
    if password is not None:
        changes["kafka_password"] = SecretStr(password)
    return broker.client_settings(user).model_copy(update=changes)


async def test_each_client_signs_in_and_does_what_its_acls_allow(broker: LocalKafka) -> None:
    topic = f"{PREFIX}{Topic.SCRIPT.value}"
    async with EventProducer(signed_in(broker, "writer"), "script") as producer:
        written = await producer.send_raw(topic, key=b"task", value=b"made by the writer")

    reader_settings = signed_in(broker, "reader")
    async with LogReader(reader_settings, name="audit") as reader:
        partitions = await reader.assign(await reader.partitions(topic, timeout_s=10))
        await reader.seek_to_beginning(partitions)
        read = [r.value async for r in reader.to_the_end(partitions)]
    assert read == [b"made by the writer"]

    follower = LogFollower(reader_settings, name="fanout")
    try:
        ends = await follower.start(topic, timeout_s=10)
        assert ends[written.partition] == written.offset + 1
        follower.follow({written.partition: written.offset})
        async with asyncio.timeout(20):
            followed = []
            while not followed:
                followed = await follower.poll(asyncio.Event())
        assert [f.value for f in followed] == [b"made by the writer"]
    finally:
        await follower.stop()


async def test_a_user_may_not_go_beyond_its_acls(broker: LocalKafka) -> None:
    async with EventProducer(signed_in(broker, "writer"), "script") as producer:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_raw(f"{PREFIX}{Topic.PROGRESS_UPDATES.value}", key=b"t", value=b"")

    # the topic bootstrap leaves what the user may not create to the cluster's owner
    assert await ensure_topics(signed_in(broker, "reader")) == []


async def test_a_wrong_password_or_no_user_never_reaches_the_log(broker: LocalKafka) -> None:
    with pytest.raises(KafkaConnectionError):
        await wait_for_broker(signed_in(broker, "writer", password="not-the-password"), timeout_s=1)
    anonymous = ServiceSettings(kafka_bootstrap_servers=broker.bootstrap_servers)
    with pytest.raises(KafkaConnectionError):
        await wait_for_broker(anonymous, timeout_s=1)
    # the right password to a broker the client cannot verify (the system's authorities)
    unverified = signed_in(broker, "writer").model_copy(update={"kafka_ca_file": None})
    with pytest.raises(KafkaConnectionError):
        await wait_for_broker(unverified, timeout_s=1)


async def test_a_producer_without_a_write_acl_fails_at_start_not_after_its_deadline(
    broker: LocalKafka,
) -> None:
    settings = signed_in(broker, "reader").model_copy(update={"producer_delivery_timeout_s": 60})
    producer = EventProducer(settings, "script")
    began = asyncio.get_running_loop().time()
    with pytest.raises(ClusterAuthorizationFailedError):  # an idempotent producer writes nowhere
        await producer.start()
    await producer.stop()
    assert asyncio.get_running_loop().time() - began < 30


def test_the_operators_command_line_signs_in_from_the_environment(
    broker: LocalKafka, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["--bootstrap", broker.bootstrap_servers, "--prefix", PREFIX, "topics", "describe"]
    assert broker.tls is not None
    monkeypatch.setenv("YTMAKER_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("YTMAKER_KAFKA_CA_FILE", str(broker.tls.ca_file))
    monkeypatch.setenv("YTMAKER_KAFKA_USERNAME", "admin")
    assert main([*command, "--json"]) == 2  # no password: a setting's error, not a traceback
    assert "YTMAKER_KAFKA_PASSWORD" in capsys.readouterr().err

    monkeypatch.setenv("YTMAKER_KAFKA_PASSWORD", USERS["admin"])
    assert main([*command, "--json"]) == 0
    described = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert described[f"{PREFIX}{Topic.SCRIPT.value}"]["exists"] is True


@pytest.mark.parametrize(
    "command",
    [["topics", "describe", "--json"], ["replay", "--verify", "--json"], ["dlq", "list"]],
)
def test_the_operators_user_may_do_what_the_command_line_does(
    broker: LocalKafka,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    for name, value in broker.client_env("kafka-operator").items():
        monkeypatch.setenv(name, value)
    code = main(["--bootstrap", broker.bootstrap_servers, *command])
    assert code == 0, capsys.readouterr().err


def test_the_audit_user_rebuilds_the_read_model_and_reads_nothing_else(
    broker: LocalKafka,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """What deploy/k8s/jobs/rebuild-read-model.yaml runs, as its user; the dead letters (users'
    texts, other topics) are not its to read."""
    env = os.environ | broker.client_env("kafka-audit") | {"YTMAKER_BROKER_STARTUP_WAIT_S": "20"}
    rebuilt = subprocess.run(
        [
            str(Path(sys.executable).with_name("ytmaker-progress")),
            "rebuild",
            "--into",
            f"sqlite:///{tmp_path / 'rebuilt.db'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    for name, value in broker.client_env("kafka-audit").items():
        monkeypatch.setenv(name, value)
    assert main(["--bootstrap", broker.bootstrap_servers, "dlq", "list"]) == 1
    assert "pipeline.dlq" in capsys.readouterr().err
