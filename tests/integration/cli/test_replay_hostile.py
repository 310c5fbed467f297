"""`ytmaker replay` and `replay --verify` on a topic of hostile records, against the real
broker: text that looks like rich markup, a timestamp beyond year 9999, a tombstone, bytes
that are not JSON. Every record is shown with its offset, the command exits normally
(`--verify`: 1, for the violations), and nothing is a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.cli.conftest import Topics, ytmaker
from ytmaker_shared.events import StageProgressed, StageProgressPayload, encode
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

#: Free text from a stage that rich would read as markup: a closing tag that opens nothing.
MARKUP = "a [/x] tag and [bold]bold[/bold]"
#: 10000-01-01T00:00:00Z in ms: a timestamp Kafka accepts and `datetime` cannot hold.
YEAR_10000_MS = 253_402_300_800_000


@pytest.fixture
async def settings(make_topics: Topics) -> ServiceSettings:
    return await make_topics("cli-hostile", 1)


def progressed(message: str) -> StageProgressed:
    return StageProgressed(
        task_id="t-hostile",
        project_id="p-hostile",
        owner="alice",
        stage=Stage.SCRIPT,
        producer="test/1",
        correlation_id="c-hostile",
        causation_id="e-none",
        payload=StageProgressPayload(progress=10, message=message),
    )


async def produce(
    settings: ServiceSettings, records: list[tuple[bytes | None, bytes | None, int | None]]
) -> str:
    topic = settings.topics.name(Topic.SCRIPT)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value, timestamp_ms in records:
            await producer.send_and_wait(
                topic, key=key, value=value, partition=0, timestamp_ms=timestamp_ms
            )
    finally:
        await producer.stop()
    return topic


async def test_text_that_looks_like_markup_is_shown_as_it_is(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the table's message column whole
    await produce(settings, [(b"t-hostile", encode(progressed(MARKUP)), None)])
    code, out, err = await ytmaker(settings, capsys, "replay", "pipeline.script")
    assert code == 0, err
    assert "1 records" in out and "[/x]" in out and "[bold]bold[/bold]" in out


async def test_a_timestamp_beyond_year_9999_is_shown_not_a_crash(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    await produce(
        settings,
        [
            (b"t-hostile", encode(progressed("far future")), YEAR_10000_MS),
            (b"t-hostile", None, None),  # a tombstone
            (b"t-hostile", b"\xff not json", None),
        ],
    )
    code, out, err = await ytmaker(settings, capsys, "replay", "pipeline.script", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["offset"] for r in rows] == [0, 1, 2]  # one partition: in offset order
    assert rows[0]["record"]["payload"]["message"] == "far future"
    assert rows[0]["timestamp"] == f"{YEAR_10000_MS} ms"
    assert rows[1]["error"] and rows[1]["value"] is None
    assert rows[2]["error"] and rows[2]["value"].startswith("base64:")
    code, out, err = await ytmaker(settings, capsys, "replay", "pipeline.script")
    assert code == 0, err
    assert "3 records" in out


async def test_the_audit_report_shows_hostile_text_as_it_is(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Keyed by another text than its task: the `key` violation quotes the key.
    await produce(settings, [(b"[/k]", encode(progressed("hello")), None)])
    code, out, err = await ytmaker(settings, capsys, "replay", "--verify")
    assert code == 1 and err == "", err
    assert "4 violations" in out and "[/k]" in out


async def test_a_time_before_1970_reads_from_the_start(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    await produce(settings, [(b"t-hostile", encode(progressed("one")), None)])
    code, out, err = await ytmaker(
        settings, capsys, "replay", "pipeline.script", "--since", "1960-01-01", "--json"
    )
    assert code == 0, err
    assert [json.loads(line)["offset"] for line in out.splitlines()] == [0]
    code, out, err = await ytmaker(
        settings, capsys, "replay", "pipeline.script", "--until", "1960-01-01", "--json"
    )
    assert (code, out) == (0, ""), err


async def test_a_dead_letter_of_any_bytes_is_shown(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    context = {
        "topic": settings.topics.name(Topic.SCRIPT),
        "partition": "0",
        "offset": "7",
        "reason": "invalid_json",
        "detail": "JSONDecodeError: [/x] nested too deep",
        "group": "g",
        "service": "script",
        "failed_at": "2026-01-05T10:00:00+00:00",
    }
    headers = [("ytmaker.dlq." + k, v.encode()) for k, v in context.items()]
    deep = b"[" * 100_000  # what orjson refuses as too deep, so what a DLQ holds
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topics.name(Topic.DLQ), key=b"t-1", value=deep, partition=0, headers=headers
        )
    finally:
        await producer.stop()
    code, out, err = await ytmaker(settings, capsys, "dlq", "show", "0:0", "--json")
    assert code == 0, err
    assert json.loads(out)["value"] == deep.decode()
    code, out, err = await ytmaker(settings, capsys, "dlq", "show", "0:0")
    assert code == 0, err
    assert "[/x] nested too deep" in out


async def test_the_audit_with_a_clock_skew_takes_times_at_the_ends_of_the_calendar(
    settings: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    first = progressed("year 1").model_copy(update={"occurred_at": datetime(1, 1, 1, tzinfo=UTC)})
    last = progressed("year 9999").model_copy(
        update={"occurred_at": datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)}
    )
    await produce(
        settings, [(b"t-hostile", encode(first), None), (b"t-hostile", encode(last), None)]
    )
    code, out, err = await ytmaker(
        settings, capsys, "replay", "--verify", "--clock-skew", "5", "--json"
    )
    assert code == 1 and err == "", err
    report = json.loads(out)
    assert report["records"] == {"pipeline.script": 2}
    assert report["violations_by_check"]["order"] >= 1
