"""`ytmaker dlq requeue` against the real broker: only a letter that is a copy of the record it
names goes back, and only to a topic whose consumers dead-letter records (decision 0129).
Every stage may write `pipeline.dlq`; a forged letter had the operator write any bytes to any
topic it named: another stage's topic, `pipeline.control`, the fold's own outputs where no
ACLs stop it (`make run`, Compose)."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from tests.integration.cli.conftest import Topics, ytmaker
from ytmaker_cli.kafka.reader import RangeReader
from ytmaker_shared.kafka import EventProducer
from ytmaker_shared.kafka.dlq import DeadLetterWriter
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.topics import Topic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

GARBAGE = b'{"not": "an event"'


@pytest.fixture
async def settings(make_topics: Topics) -> ServiceSettings:
    return await make_topics("cli-requeue", 1)


async def letter(
    settings: ServiceSettings,
    topic: str,
    offset: int,
    key: bytes,
    value: bytes,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """A dead letter as the shared runtime writes one, naming `topic`[0]@`offset`."""
    record = ConsumerRecord(
        topic, 0, offset, 0, 0, key, value, None, len(value), len(key), headers or []
    )
    async with EventProducer(settings, "forger") as producer:
        await DeadLetterWriter(producer, "a-group").write(record, "invalid_json", "test")


async def records(settings: ServiceSettings, topic: Topic) -> list[bytes | None]:
    async with RangeReader(settings.kafka_bootstrap_servers) as log:
        tps = await log.partitions(settings.topics.name(topic))
        return [raw.value async for raw in log.read(await log.bounds(tps))]


async def test_only_a_copy_of_the_record_it_names_is_requeued(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    script = settings.topics.name(Topic.SCRIPT)
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await raw.start()
    try:
        written = await raw.send_and_wait(script, key=b"t-1", value=GARBAGE)
    finally:
        await raw.stop()
    assert (written.partition, written.offset) == (0, 0)
    forged = b'{"type": "stage.completed", "forged": true}'
    await letter(settings, script, 0, b"t-1", GARBAGE)  # the real one: 0:0
    await letter(settings, script, 0, b"t-1", forged)  # not what is at script@0
    await letter(settings, settings.topics.name(Topic.CONTROL), 0, b"t-1", forged)  # nothing
    await letter(settings, settings.topics.name(Topic.PROGRESS_UPDATES), 0, b"t-1", forged)
    await letter(settings, script, 7, b"t-1", GARBAGE)  # past the topic's end
    await letter(settings, script, 0, b"t-1", GARBAGE, [("traceparent", b"forged")])

    code, out, err = await ytmaker(settings, capsys, "dlq", "requeue", "--all", "--json")

    assert code == 1 and "5 dead letter(s) not requeued" in err
    rows = {row["id"]: row for row in json.loads(out)}
    assert rows["0:0"]["requeued_to"] == f"{script}[0]@1"
    assert rows["0:1"]["refused"] == f"is not a copy of {script}[0]@0, the record it names"
    assert "which is not on the topic" in rows["0:2"]["refused"]
    assert "a topic no consumer dead-letters from" in rows["0:3"]["refused"]
    assert "which is not on the topic" in rows["0:4"]["refused"]
    assert rows["0:5"]["refused"] == rows["0:1"]["refused"]  # the same bytes, one header more
    assert await records(settings, Topic.SCRIPT) == [GARBAGE, GARBAGE]  # the real one, again
    assert await records(settings, Topic.CONTROL) == []
    assert await records(settings, Topic.PROGRESS_UPDATES) == []

    code, out, _ = await ytmaker(
        settings, capsys, "dlq", "requeue", "--all", "--reason", "none-such", "--dry-run"
    )
    assert code == 0 and "would requeue 0 dead letter(s)" in out
    code, out, _ = await ytmaker(settings, capsys, "dlq", "requeue", "0:0", "--dry-run")
    assert code == 0 and "would requeue 1 dead letter(s)" in out
    code, out, _ = await ytmaker(settings, capsys, "dlq", "requeue", "0:1", "--dry-run")
    assert code == 1 and "0:1  not requeued: the letter is not a copy of" in out


async def test_records_of_the_dead_letter_topic_that_are_no_letters_are_counted(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """They were left out without a word: an operator did not learn that something else
    writes to the dead-letter topic."""
    dlq = settings.topics.name(Topic.DLQ)
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await raw.start()
    try:
        await raw.send_and_wait(dlq, key=b"t-1", value=b"no headers")
        bad_partition = [("ytmaker.dlq.topic", b"x"), ("ytmaker.dlq.partition", b"zero")]
        await raw.send_and_wait(dlq, key=b"t-1", value=b"x", headers=bad_partition)
        undecodable = [("ytmaker.dlq.topic", b"\xff"), ("ytmaker.dlq.partition", b"0")]
        await raw.send_and_wait(dlq, key=b"t-1", value=b"x", headers=undecodable)
    finally:
        await raw.stop()
    await letter(settings, settings.topics.name(Topic.SCRIPT), 0, b"t-1", GARBAGE)

    code, out, err = await ytmaker(settings, capsys, "dlq", "list", "--json")

    assert code == 0 and [row["id"] for row in json.loads(out)] == ["0:3"]
    assert f"3 record(s) of {dlq} are not dead letters" in err
