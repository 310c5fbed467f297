"""`ensure_topics` leaves a new cluster with its coordinators ready.

A new cluster makes its coordinators' topics when a client first asks for one; before this,
every service that started on a new broker (`make run`'s first run, a new deployment) logged
aiokafka's "Group Coordinator Request failed" at ERROR until they were loaded.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.kafka import KafkaBrokerFactory, unique_name
from ytmaker_shared.kafka import ensure_topics
from ytmaker_shared.kafka.admin import one_key_per_partition
from ytmaker_shared.settings import ServiceSettings

pytestmark = pytest.mark.kafka

GROUP, TRANSACTION = 0, 1


async def test_a_new_cluster_answers_every_coordinator_lookup_after_ensure_topics(
    kafka_broker_factory: KafkaBrokerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await asyncio.to_thread(kafka_broker_factory)
    settings = ServiceSettings(
        kafka_bootstrap_servers=broker.bootstrap_servers, topic_prefix=unique_name("coord") + "."
    )
    await ensure_topics(settings)

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        for kind, topic in ((GROUP, "__consumer_offsets"), (TRANSACTION, "__transaction_state")):
            (described,) = await admin.describe_topics([topic])
            partitions = len(described["partitions"])
            assert partitions > 1, described
            # keys other than those ensure_topics asked for, one per partition
            for key in one_key_per_partition(partitions, prefix="test"):
                # raises GroupCoordinatorNotAvailableError while the coordinator is not ready;
                # else the one node (node.id=1)
                assert await admin.find_coordinator(key, kind) == 1
    finally:
        await admin.close()

    caplog.set_level(logging.WARNING, logger="aiokafka")
    consumer = AIOKafkaConsumer(
        settings.topics.all()[0],
        bootstrap_servers=broker.bootstrap_servers,
        group_id=unique_name("coord-group"),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=200)
    finally:
        await consumer.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
