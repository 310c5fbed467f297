"""Pytest plugin: a real Apache Kafka broker for tests.

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["tests.support.kafka"]``.

Fixtures:

* ``kafka_bootstrap`` (session): bootstrap servers of the cluster every Kafka test shares. The
  cluster of ``KAFKA_BOOTSTRAP_SERVERS`` when set, otherwise one local broker started for the
  session on free ports and a temporary data directory, stopped at the end. Share it safely by
  giving every topic and consumer group a :func:`unique_name`.
* ``kafka_broker_factory`` (function): starts brokers of the test's own (crash, restart, ...),
  each on its own ports and data directory, even when ``KAFKA_BOOTSTRAP_SERVERS`` is set; they
  are stopped when the test ends.

When a broker cannot be started (no Java, no Maven for the first fetch, ...) the test is skipped
locally and fails in CI (see :func:`tests.support.components.unavailable`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ytmaker_dev.kafka import (
    DevKafkaError,
    LocalKafka,
    external_bootstrap_servers,
)
from ytmaker_dev.ports import free_port
from ytmaker_shared.kafka.connection import librdkafka_connection

from .components import unavailable

START_TIMEOUT = 120.0


def unique_name(prefix: str) -> str:
    """A topic / consumer-group / transactional-id name no other test uses: ``<prefix>-<hex>``.

    Characters Kafka does not allow in topic names are replaced by ``-``.
    """
    clean = re.sub(r"[^a-zA-Z0-9._-]", "-", prefix)[:200]
    return f"{clean}-{uuid.uuid4().hex[:12]}"


def new_local_broker(data_dir: Path) -> LocalKafka:
    """A (not yet started) local broker on free ports, ignoring ``KAFKA_BOOTSTRAP_SERVERS``."""
    return LocalKafka(
        data_dir,
        port=free_port(),
        controller_port=free_port(),
        honour_env=False,
    )


def _start_or_unavailable(broker: LocalKafka) -> None:
    """Start *broker*; when it cannot start, skip (locally) or fail (CI) the test."""
    try:
        broker.start(timeout=START_TIMEOUT)
    except DevKafkaError as exc:
        reason = f"cannot start a local Kafka broker: {exc}"
    else:
        return
    unavailable(reason)  # outside the except block: no chained traceback in the report


class KafkaBrokerFactory:
    """Callable fixture value: ``factory(data_dir=None, start=True) -> LocalKafka``.

    Each call makes a separate broker on its own free ports; *data_dir* defaults to a new
    directory under the test's ``tmp_path``. With ``start=True`` the call blocks until the broker
    serves clients (from async tests, call it via ``asyncio.to_thread`` if that matters).
    """

    def __init__(self, tmp_path: Path) -> None:
        self._tmp_path = tmp_path
        self.brokers: list[LocalKafka] = []

    def __call__(self, data_dir: Path | None = None, *, start: bool = True) -> LocalKafka:
        if data_dir is None:
            data_dir = self._tmp_path / f"kafka-{len(self.brokers)}"
        broker = new_local_broker(data_dir)
        self.brokers.append(broker)
        if start:
            _start_or_unavailable(broker)
        return broker

    def close(self) -> None:
        """Stop every broker this factory made (SIGKILL when a clean stop fails)."""
        for broker in self.brokers:
            try:
                broker.stop(timeout=30.0)
            except Exception:
                broker.kill()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of the Kafka cluster shared by the whole test session."""
    external = external_bootstrap_servers()
    if external is not None:
        yield external
        return
    broker = new_local_broker(tmp_path_factory.mktemp("kafka-session"))
    _start_or_unavailable(broker)
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def kafka_broker_factory(tmp_path: Path) -> Iterator[KafkaBrokerFactory]:
    """Start brokers of the test's own; see :class:`KafkaBrokerFactory`."""
    factory = KafkaBrokerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


def new_secured_broker(data_dir: Path, users: dict[str, str], *, tls: bool = True) -> LocalKafka:
    """A (not yet started) local broker that wants SCRAM-SHA-512 users over TLS (its own
    authority: `broker.tls.ca_file`) and enforces ACLs (`users` holds `admin`, its super
    user), on free ports."""
    return LocalKafka(
        data_dir,
        port=free_port(),
        controller_port=free_port(),
        honour_env=False,
        scram_users=users,
        tls=tls,
    )


def grant(broker: LocalKafka, user: str, acls: list[dict[str, Any]]) -> None:
    """Give `user` the ACLs written as a Strimzi `KafkaUser`'s `spec.authorization.acls`
    (`{resource: {type, name, patternType}, operations: [...]}`), as its user operator would,
    through the super user."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    admin = AdminClient(librdkafka_connection(broker.client_settings()))
    pattern = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
    kind = {
        "topic": ResourceType.TOPIC,
        "group": ResourceType.GROUP,
        "transactionalId": ResourceType.TRANSACTIONAL_ID,
        "cluster": ResourceType.BROKER,  # librdkafka's name for the cluster resource
    }
    bindings = [
        AclBinding(
            kind[acl["resource"]["type"]],
            acl["resource"].get("name", "kafka-cluster"),
            pattern[acl["resource"].get("patternType", "literal")],
            f"User:{user}",
            "*",
            AclOperation[re.sub(r"(?<!^)(?=[A-Z])", "_", operation).upper()],
            AclPermissionType.ALLOW,
        )
        for acl in acls
        for operation in acl["operations"]
    ]
    for future in admin.create_acls(bindings, request_timeout=30).values():
        future.result()
