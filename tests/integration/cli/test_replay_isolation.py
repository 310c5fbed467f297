"""`ytmaker replay` reads `progress.updates` uncommitted, as its readers do (decision 0038),
and every other topic committed only, also when both are replayed together: a record of an
aborted transaction on a pipeline topic never happened and is not shown; an update of an
aborted transaction was streamed to clients and is."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.cli.conftest import Topics, ytmaker
from tests.support.kafka import unique_name
from tests.support.wait import wait_until_async
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import Topic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


@pytest.fixture
async def settings(make_topics: Topics) -> ServiceSettings:
    return await make_topics("cli-isolation", 1)


async def write(settings: ServiceSettings, topic: Topic, value: bytes, *, commit: bool) -> None:
    """One record in a transaction of its own, committed or aborted."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        transactional_id=unique_name("cli-isolation-tx"),
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_and_wait(settings.topics.name(topic), value, key=b"t-1")
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    finally:
        await producer.stop()


async def test_updates_uncommitted_beside_other_topics_committed(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    await write(settings, Topic.SCRIPT, b'{"aborted": true}', commit=False)
    await write(settings, Topic.SCRIPT, b'{"committed": true}', commit=True)
    await write(settings, Topic.PROGRESS_UPDATES, b'{"streamed": true}', commit=False)

    async def shown(*topics: str) -> list[tuple[str, str]]:
        """The records replayed, as (topic, value): offsets depend on when the coordinator
        wrote each transaction's marker."""
        code, out, err = await ytmaker(settings, capsys, "replay", *topics, "--json")
        assert code == 0, err
        rows = [json.loads(line) for line in out.splitlines()]
        return sorted((row["topic"], row["value"]) for row in rows)

    script, updates = Topic.SCRIPT.value, Topic.PROGRESS_UPDATES.value
    kept = (script, '{"committed": true}')
    streamed = (updates, '{"streamed": true}')

    async def markers_written() -> bool:  # the coordinator writes them after each end
        return await shown(script) == [kept]

    await wait_until_async(markers_written, timeout=10, what="the transactions' markers")
    assert await shown(updates) == [streamed]
    assert await shown(script, updates) == [kept, streamed]
