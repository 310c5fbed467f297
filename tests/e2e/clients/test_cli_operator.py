"""The operators' commands straight on Kafka, against the running system's topics (docs/cli.md).

- The audit: a run is produced and `replay --verify` exits 0; then a copy of the topics gets
  an out-of-order record, a malformed one, a progress event after completion and an update
  that the fold would not have made: the report names each with its coordinates, exit 1.
- `replay` filtered and merged in time; `rebuild` equal to the live read model; dead letters
  written by the shared runtime listed, shown and requeued (the original bytes, marked);
  `topics describe` with lag per group and `topics create`; `token`.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from tests.support.kafka import unique_name
from ytmaker_cli.kafka.reader import RangeReader
from ytmaker_client import RestClient
from ytmaker_progress.records import decode_update
from ytmaker_shared.events import StageProgressed, StageProgressPayload, decode, encode
from ytmaker_shared.kafka import ConsumerLoop, EventProducer, delete_topics, ensure_topics
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import TOPIC_SPECS, Topic

from .conftest import SAMPLE, SHORT, InProcess, Running

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.timeout(420)]


class Copy:
    """The system's topics copied under another prefix, record by record, into the same
    partitions (so that the pipeline topics keep their offsets), with faults put in.

    The copy is a consistent cut of a log that may still be moving (a run of another test
    going on): the fold's checkpoints are bounded first, then its updates, then its inputs, as
    `replay --verify` reads them, so that every input the copied positions say the fold read
    had its update copied too."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.prefix = unique_name("audit-copy") + "."
        self.settings = ServiceSettings(
            kafka_bootstrap_servers=running.bootstrap, topic_prefix=self.prefix, topic_partitions=3
        )
        self.faults: dict[str, tuple[str, str, int, int]] = {}  # name → (check, topic, p, o)

    async def make(self, task_id: str) -> None:
        await ensure_topics(self.settings)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.running.bootstrap, acks="all", linger_ms=5
        )
        await producer.start()
        try:
            async with RangeReader(self.running.bootstrap) as log:
                outputs = (Topic.PROGRESS_STATE, Topic.PROGRESS_UPDATES)
                cut = [*outputs, *(s.topic for s in TOPIC_SPECS if s.topic not in outputs)]
                bounds = {topic: await self._bounds(log, topic) for topic in cut}
                for spec in TOPIC_SPECS:
                    await self._copy(log, producer, spec.topic, bounds[spec.topic], task_id)
        finally:
            await producer.stop()

    async def make_while_another_runs(self, task_id: str) -> None:
        async with RestClient(self.running.base) as rest:
            other = await rest.create_project("Runs during the copy", SAMPLE, SHORT)
            deadline = time.monotonic() + 120
            while (await rest.task(other.task_id)).progress <= 0:
                assert time.monotonic() < deadline, "the other run did not start"
                await asyncio.sleep(0.1)
            try:
                await self.make(task_id)
            finally:
                await rest.cancel(other.task_id, "the copy is made")

    async def _bounds(
        self, log: RangeReader, topic: Topic
    ) -> dict[TopicPartition, tuple[int, int]]:
        return await log.bounds(await log.partitions(f"{self.running.prefix}{topic.value}"))

    async def _copy(
        self,
        log: RangeReader,
        producer: AIOKafkaProducer,
        topic: Topic,
        bounds: dict[TopicPartition, tuple[int, int]],
        task_id: str,
    ) -> None:
        target = f"{self.prefix}{topic.value}"
        by_partition: dict[int, list] = {tp.partition: [] for tp in bounds}
        async for raw in log.read(bounds):
            by_partition[raw.partition].append(raw)
        for partition, records in by_partition.items():
            offsets = [r.offset for r in records]
            if topic is Topic.SCRIPT:
                records = self._swap_start_and_progress(records, task_id)
            forged_done = False
            for index, raw in enumerate(records):
                value = raw.value
                if (
                    topic is Topic.PROGRESS_UPDATES
                    and not forged_done
                    and raw.key == task_id.encode()
                ):
                    update = decode_update(value or b"")
                    if update.state.progress > 30:  # an update in the middle of the run
                        state = update.state.model_copy(
                            update={"progress": update.state.progress + 1.5}
                        )
                        value = (
                            update.model_copy(update={"state": state}).model_dump_json().encode()
                        )
                        forged_done = True
                meta = await producer.send_and_wait(
                    target, key=raw.key, value=value, headers=list(raw.headers), partition=partition
                )
                if topic is not Topic.PROGRESS_UPDATES and topic is not Topic.PROGRESS_STATE:
                    assert meta.offset == offsets[index], (
                        "a pipeline topic's copy keeps its offsets"
                    )
                if value is not raw.value:
                    self.faults["forged update"] = ("fold", topic.value, partition, meta.offset)
            if topic is Topic.RENDER and partition == self.partition(task_id):
                meta = await producer.send_and_wait(
                    target,
                    key=task_id.encode(),
                    value=b'{"type": "stage.progress", oops',
                    partition=partition,
                )
                self.faults["malformed"] = ("envelope", topic.value, partition, meta.offset)
            if topic is Topic.UPLOAD and partition == self.partition(task_id):
                done = next(
                    decode(r.value)
                    for r in records
                    if r.key == task_id.encode() and b'"stage.completed"' in (r.value or b"")
                )
                late = done.caused(
                    StageProgressed,
                    producer="upload/audit-test",
                    stage=Stage.UPLOAD,
                    occurred_at=done.occurred_at + timedelta(seconds=5),
                    payload=StageProgressPayload(progress=60, message="after the end"),
                )
                meta = await producer.send_and_wait(
                    target, key=task_id.encode(), value=encode(late), partition=partition
                )
                self.faults["progress after completion"] = (
                    "state",
                    topic.value,
                    partition,
                    meta.offset,
                )

    def _swap_start_and_progress(self, records: list, task_id: str) -> list:
        mine = [i for i, r in enumerate(records) if r.key == task_id.encode()]
        if not mine:
            return records
        start, progress = mine[0], mine[1]
        assert b'"stage.started"' in records[start].value
        assert b'"stage.progress"' in records[progress].value
        out = list(records)
        out[start], out[progress] = records[progress], records[start]
        partition = records[start].partition
        self.faults["out of order"] = (
            "order",
            Topic.SCRIPT.value,
            partition,
            records[start].offset,
        )
        return out

    def partition(self, task_id: str) -> int:
        return self._partitions[task_id]

    async def locate(self, task_id: str) -> None:
        async with RangeReader(self.running.bootstrap) as log:
            name = f"{self.running.prefix}{Topic.TASKS.value}"
            bounds = await log.bounds(await log.partitions(name))
            async for raw in log.read(bounds):
                if raw.key == task_id.encode():
                    self._partitions = {task_id: raw.partition}
                    return
        raise AssertionError("the task is not in pipeline.tasks")


def test_verify_passes_then_names_each_fault(
    ytmaker: InProcess, running: Running, finished: tuple[str, str]
) -> None:
    task_id = finished[0]
    clean = ytmaker("replay", "--verify", "--json")
    report = json.loads(clean.stdout)
    assert clean.returncode == 0, report["violations"]
    assert report["ok"] and report["tasks"] >= 1 and report["updates"] > 10
    table = ytmaker("replay", "--verify")
    assert table.returncode == 0 and "OK: no violation" in table.stdout

    copy = Copy(running)
    asyncio.run(copy.locate(task_id))
    try:
        # Copied while another run moves through the stages and the fold (CI once blamed
        # such a run's events): the copy is a consistent cut, and the audit counts the events
        # of a lane that has not written anything yet as pending.
        asyncio.run(copy.make_while_another_runs(task_id))
        assert set(copy.faults) == {
            "out of order",
            "malformed",
            "progress after completion",
            "forged update",
        }
        audited = ytmaker("--prefix", copy.prefix, "replay", "--verify", "--json")
        assert audited.returncode == 1, audited.stderr
        report = json.loads(audited.stdout)
        found = {
            (v["check"], v["topic"], v["partition"], v["offset"]) for v in report["violations"]
        }
        for name, expected in copy.faults.items():
            assert expected in found, (name, expected, report["violations"])
        # Nothing else is blamed: every violation is at a fault (or the record swapped
        # with the out-of-order one), and only this task's.
        swapped = copy.faults["out of order"]
        allowed = {*copy.faults.values(), ("order", swapped[1], swapped[2], swapped[3] + 1)}
        assert {(c, t, p, o) for c, t, p, o in found} <= {
            (c, t, p, o) for c, t, p, o in allowed
        } | {("state", *copy.faults["progress after completion"][1:])}, report["violations"]
        people = ytmaker("--prefix", copy.prefix, "replay", "--verify")
        assert people.returncode == 1
        assert "violations" in people.stdout and "pipeline.render" in people.stdout
    finally:
        asyncio.run(delete_topics(copy.settings))


def test_replay_filters_and_merges_in_time(
    ytmaker: InProcess, running: Running, finished: tuple[str, str]
) -> None:
    task_id = finished[0]
    lines = ytmaker("replay", "--task", task_id, "--json").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["type"] == "task.requested" and records[-1]["type"] == "task.completed"
    times = [r["timestamp"] for r in records]
    assert times == sorted(times)  # merged in time across the six topics
    assert {r["topic"] for r in records} >= {
        "pipeline.tasks",
        "pipeline.script",
        "pipeline.assets",
        "pipeline.render",
        "pipeline.upload",
    }
    assert all(r["task_id"] == task_id and r["error"] is None for r in records)

    completed = [
        json.loads(line)
        for line in ytmaker(
            "replay",
            "pipeline.render",
            "pipeline.upload",
            "--task",
            task_id,
            "--type",
            "stage.completed",
            "--json",
        ).stdout.splitlines()
    ]
    assert [r["record"]["stage"] for r in completed] == ["render", "upload"]

    updates = ytmaker("replay", "progress.updates", "--task", task_id, "--limit", "3", "--json")
    assert len(updates.stdout.splitlines()) == 3
    recent = ytmaker("replay", "--task", task_id, "--since", "1h", "--json").stdout
    assert len(recent.splitlines()) == len(records)
    assert ytmaker("replay", "--task", task_id, "--until", "2000-01-01", "--json").stdout == ""
    first = records[0]
    one = ytmaker(
        "replay",
        first["topic"],
        "--partition",
        str(first["partition"]),
        "--from-offset",
        str(first["offset"]),
        "--to-offset",
        str(first["offset"]),
        "--json",
    )
    assert [json.loads(x)["offset"] for x in one.stdout.splitlines()] == [first["offset"]]
    table = ytmaker("replay", "--task", task_id)
    assert (
        table.returncode == 0
        and "task.requested" in table.stdout
        and "stage.progress" in table.stdout
    )


def test_rebuild_equals_the_live_read_model(
    ytmaker: InProcess, running: Running, finished: tuple[str, str], tmp_path: Path
) -> None:
    deadline = time.monotonic() + 60
    attempt = 0
    while True:  # the live read model follows the log a moment behind
        attempt += 1
        into = f"sqlite:///{tmp_path / f'rebuilt-{attempt}.db'}"
        result = ytmaker("rebuild", "--into", into, "--json")
        outcome = json.loads(result.stdout)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result.returncode == 0, outcome
    assert outcome["equal"] is True and outcome["updates"] > 10
    refused = ytmaker("rebuild", "--into", into)
    assert refused.returncode == 2 and "fresh database" in refused.stderr


def test_dead_letters_list_show_requeue(ytmaker: InProcess, running: Running) -> None:
    settings = ServiceSettings(
        kafka_bootstrap_servers=running.bootstrap,
        topic_prefix=unique_name("dlq") + ".",
        topic_partitions=2,
    )
    garbage = b'{"this is": "not an event"'

    async def dead_letter_one() -> None:
        await ensure_topics(settings)
        raw = AIOKafkaProducer(bootstrap_servers=running.bootstrap, acks="all")
        await raw.start()
        await raw.send_and_wait(settings.topics.name(Topic.SCRIPT), key=b"t-1", value=garbage)
        await raw.stop()
        producer = EventProducer(settings, "audit-test")
        await producer.start()

        async def handler(event: object, record: object) -> None:
            raise AssertionError("nothing valid was written")

        loop = ConsumerLoop(
            settings,
            service="audit-test",
            group_id=settings.topic_prefix + "audit-test",
            topics=[Topic.SCRIPT],
            handler=handler,  # type: ignore[arg-type]
            producer=producer,
        )
        runner = asyncio.create_task(loop.run())
        async with RangeReader(running.bootstrap) as log:
            dlq = settings.topics.name(Topic.DLQ)
            deadline = time.monotonic() + 60
            while sum(e for _, e in (await log.bounds(await log.partitions(dlq))).values()) < 1:
                assert time.monotonic() < deadline, "nothing was dead-lettered"
                await asyncio.sleep(0.2)
        loop.stop()
        await runner
        await producer.stop()

    env = running.cli_env(YTMAKER_TOPIC_PREFIX=settings.topic_prefix)
    try:
        asyncio.run(dead_letter_one())
        listed = json.loads(ytmaker("dlq", "list", "--json", env=env).stdout)
        assert len(listed) == 1
        letter = listed[0]
        assert letter["reason"] == "invalid_json" and letter["key"] == "t-1"
        assert letter["topic"] == settings.topics.name(Topic.SCRIPT) and letter["offset"] == 0
        assert (
            json.loads(
                ytmaker("dlq", "list", "--reason", "invalid_event", "--json", env=env).stdout
            )
            == []
        )
        shown = json.loads(ytmaker("dlq", "show", letter["id"], "--json", env=env).stdout)
        assert shown["value"] == garbage.decode() and shown["group"].endswith("audit-test")
        assert "dead letters (1)" in ytmaker("dlq", "list", env=env).stdout

        requeued = ytmaker("dlq", "requeue", letter["id"], "--by", "ops-test", "--json", env=env)
        assert requeued.returncode == 0, requeued.stderr
        target = json.loads(requeued.stdout)[0]["requeued_to"]
        assert target == f"{settings.topics.name(Topic.SCRIPT)}[{letter['partition']}]@1"

        async def read_back() -> tuple[bytes | None, dict[str, bytes]]:
            async with RangeReader(running.bootstrap) as log:
                tp = TopicPartition(settings.topics.name(Topic.SCRIPT), letter["partition"])
                async for raw in log.read({tp: (1, 2)}):
                    return raw.value, dict(raw.headers)
            raise AssertionError("the requeued record is not there")

        value, headers = asyncio.run(read_back())
        assert value == garbage  # byte for byte
        assert (
            headers["ytmaker.requeued.from"].decode()
            == f"{settings.topics.name(Topic.DLQ)}/{letter['id'].replace(':', '/')}"
        )
        assert headers["ytmaker.requeued.by"] == b"ops-test"
        assert not [k for k in headers if k.startswith("ytmaker.dlq.")]
        missing = ytmaker("dlq", "show", "9:999", env=env)
        assert missing.returncode == 1 and "no dead letter 9:999" in missing.stderr
    finally:
        asyncio.run(delete_topics(settings))


def test_topics_describe_and_create(
    ytmaker: InProcess, running: Running, finished: tuple[str, str]
) -> None:
    described = {
        t["logical"]: t for t in json.loads(ytmaker("topics", "describe", "--json").stdout)
    }
    assert set(described) == {s.topic.value for s in TOPIC_SPECS}
    assert all(t["exists"] and t["partitions"] == 3 for t in described.values())
    assert described["progress.state"]["cleanup_policy"] == "compact"
    assert described["pipeline.dlq"]["retention_ms"] == "-1"
    assert described["pipeline.tasks"]["offsets"] >= 2
    script_group = f"{running.prefix}script"
    deadline = time.monotonic() + 30
    while described["pipeline.tasks"]["lag"].get(script_group) != 0:
        assert time.monotonic() < deadline, described["pipeline.tasks"]["lag"]
        time.sleep(1)
        described = {
            t["logical"]: t for t in json.loads(ytmaker("topics", "describe", "--json").stdout)
        }
    table = ytmaker("topics", "describe").stdout
    assert "forever" in table and "script: 0" in table

    fresh = running.cli_env(YTMAKER_TOPIC_PREFIX=unique_name("topics") + ".")
    try:
        made = ytmaker("topics", "create", "--partitions", "2", env=fresh)
        assert made.returncode == 0 and f"{len(TOPIC_SPECS)} created" in made.stdout
        again = ytmaker("topics", "create", env=fresh)
        assert "0 created" in again.stdout
        parts = {
            t["partitions"]
            for t in json.loads(ytmaker("topics", "describe", "--json", env=fresh).stdout)
        }
        assert parts == {2}
    finally:
        settings = ServiceSettings(
            kafka_bootstrap_servers=running.bootstrap, topic_prefix=fresh["YTMAKER_TOPIC_PREFIX"]
        )
        asyncio.run(delete_topics(settings))


def test_token(ytmaker: InProcess, running: Running) -> None:
    minted = ytmaker("token", "--user", "dora", "--ttl", "600")
    token = minted.stdout.strip()
    assert minted.returncode == 0 and token.count(".") == 2 and "\n" not in token
    as_dora = running.cli_env(YTMAKER_TOKEN=token)
    assert json.loads(ytmaker("runs", "--json", env=as_dora).stdout) is not None
    no_secret = running.cli_env()
    no_secret.pop("YTMAKER_JWT_SECRET")
    refused = ytmaker("token", env=no_secret)
    assert refused.returncode == 2 and "YTMAKER_JWT_SECRET" in refused.stderr
