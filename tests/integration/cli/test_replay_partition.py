"""`ytmaker replay --partition N` against the real broker: a partition the topic does not
have is bad usage (exit 2, one line naming the topic and how many partitions it has), not
an empty table of "0 records"."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.cli.conftest import Topics, ytmaker
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import Topic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


@pytest.fixture
async def settings(make_topics: Topics) -> ServiceSettings:
    return await make_topics("cli-partition", 2)


async def test_a_partition_the_topic_does_not_have_is_refused(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    name = settings.topics.name(Topic.TASKS)
    code, out, err = await ytmaker(settings, capsys, "replay", "pipeline.tasks", "--partition", "2")
    assert (code, out) == (2, ""), err
    assert err == f"error: --partition 2: topic {name} has 2 partitions (0-1)\n"


async def test_every_topic_read_must_have_the_partition(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default `pipeline`: the first topic without it is named.
    code, out, err = await ytmaker(
        settings, capsys, "replay", "--partition", "1", "--partition", "7", "--json"
    )
    assert (code, out) == (2, ""), err
    assert err.startswith("error: --partition 7: topic ") and "has 2 partitions (0-1)" in err


async def test_a_partition_the_topic_has_is_read(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for partition in (0, 1):
            await producer.send_and_wait(
                settings.topics.name(Topic.TASKS), key=b"t-1", value=b"{}", partition=partition
            )
    finally:
        await producer.stop()
    code, out, err = await ytmaker(
        settings, capsys, "replay", "pipeline.tasks", "--partition", "1", "--json"
    )
    assert code == 0, err
    assert [json.loads(line)["partition"] for line in out.splitlines()] == [1]
