"""The local development/test broker (ytmaker_dev.kafka) keeps every message.

Restart after a clean stop and after SIGKILL on the same data directory, checked with raw
aiokafka; and ``KAFKA_BOOTSTRAP_SERVERS`` makes ``start`` start nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.kafka import KafkaBrokerFactory, unique_name
from ytmaker_dev.kafka import (
    ENV_BOOTSTRAP,
    LocalKafka,
    ensure_broker,
)
from ytmaker_dev.ports import free_port

pytestmark = pytest.mark.kafka

N_MESSAGES = 500
PARTITIONS = 3
DEADLINE = 90.0

Record = tuple[int, int, bytes, bytes]  # partition, offset, key, value


async def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, n: int) -> list[Record]:
    """Produce *n* keyed messages (acks=all, idempotent); return what the broker acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        keys = [f"key-{i % 37}".encode() for i in range(n)]
        values = [f"value-{i}".encode() for i in range(n)]
        futures = [await producer.send(topic, value=values[i], key=keys[i]) for i in range(n)]
        metadata = await asyncio.gather(*futures)
        records = [(m.partition, m.offset, keys[i], values[i]) for i, m in enumerate(metadata)]
    finally:
        await producer.stop()
    return sorted(records)


async def consume_all(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> list[Record]:
    """Read every record of *topic* from the beginning up to the current end offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Record] = []
        async with asyncio.timeout(DEADLINE):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(*tps, timeout_ms=1000)
                for tp, messages in batches.items():
                    records += [(tp.partition, m.offset, m.key, m.value) for m in messages]
    finally:
        await consumer.stop()
    return sorted(records)


def cluster_id(broker: LocalKafka) -> str:
    for line in (broker.kafka_data_dir / "meta.properties").read_text().splitlines():
        if line.startswith("cluster.id="):
            return line.split("=", 1)[1]
    raise AssertionError("no cluster.id in meta.properties")


def clean_shutdown_marker(broker: LocalKafka) -> Path:
    return broker.kafka_data_dir / ".kafka_cleanshutdown"


async def produce_restart_consume(factory: KafkaBrokerFactory, *, crash: bool) -> None:
    broker = await asyncio.to_thread(factory)
    topic = unique_name("devkafka-restart")
    await create_topic(broker.bootstrap_servers, topic)
    produced = await produce(broker.bootstrap_servers, topic, N_MESSAGES)
    assert len(produced) == N_MESSAGES
    assert len({(p, o) for p, o, _, _ in produced}) == N_MESSAGES
    before = (broker.data_dir, broker.bootstrap_servers, cluster_id(broker), broker.pid)

    if crash:
        await asyncio.to_thread(broker.kill)
        assert broker.returncode == -signal.SIGKILL
        assert not clean_shutdown_marker(broker).exists()
    else:
        await asyncio.to_thread(broker.stop)
        assert clean_shutdown_marker(broker).exists()
    assert not broker.is_running()
    assert not broker.pid_file.exists()

    await asyncio.to_thread(broker.start)
    assert broker.is_running()
    assert broker.pid != before[3]
    assert (broker.data_dir, broker.bootstrap_servers, cluster_id(broker)) == before[:3]

    consumed = await consume_all(broker.bootstrap_servers, topic)
    assert consumed == produced


async def test_clean_stop_and_restart_keeps_every_message(
    kafka_broker_factory: KafkaBrokerFactory,
) -> None:
    await produce_restart_consume(kafka_broker_factory, crash=False)


async def test_sigkill_and_restart_keeps_every_message(
    kafka_broker_factory: KafkaBrokerFactory,
) -> None:
    await produce_restart_consume(kafka_broker_factory, crash=True)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_start_with_external_bootstrap_servers_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    external = "127.0.0.1:1"  # never contacted
    monkeypatch.setenv(ENV_BOOTSTRAP, external)
    data_dir = tmp_path / "kafka"
    port, controller_port = free_port(), free_port()

    broker = LocalKafka(data_dir, port=port, controller_port=controller_port)
    assert broker.start() is broker
    assert broker.is_external
    assert broker.bootstrap_servers == external
    assert not broker.is_running()
    broker.stop()  # a no-op for an external cluster

    assert ensure_broker(data_dir, port=port, controller_port=controller_port) == (external, None)

    env = {
        **os.environ,
        "YTMAKER_KAFKA_DATA_DIR": str(data_dir),
        "YTMAKER_KAFKA_PORT": str(port),
        "YTMAKER_KAFKA_CONTROLLER_PORT": str(controller_port),
    }
    for command in ("start", "run"):
        proc = subprocess.run(
            [sys.executable, "-m", "ytmaker_dev.kafka", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "nothing started" in proc.stdout

    assert not data_dir.exists()
    assert port_is_free(port)
    assert port_is_free(controller_port)


async def test_transactions_and_consumer_groups_work(kafka_bootstrap: str) -> None:
    """The single-node settings let the transaction and group coordinators work."""
    topic = unique_name("devkafka-tx")
    await create_topic(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=unique_name("devkafka-tx-id")
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(10):
                await producer.send(topic, key=b"k", value=f"committed-{i}".encode())
        await producer.begin_transaction()
        for i in range(5):
            await producer.send(topic, key=b"k", value=f"aborted-{i}".encode())
        await producer.abort_transaction()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=unique_name("devkafka-group"),
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        partitions: set[TopicPartition] = set()
        async with asyncio.timeout(DEADLINE):
            while len(values) < 10:
                for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                    partitions.add(tp)
                    values += [m.value for m in messages if m.value is not None]
            (tp,) = partitions  # one key, one partition
            # read past the aborted records and the transaction markers (up to the LSO)
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                for messages in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    values += [m.value for m in messages if m.value is not None]
            await consumer.commit()
            assert await consumer.committed(tp) == end
    finally:
        await consumer.stop()
    assert values == [f"committed-{i}".encode() for i in range(10)]
