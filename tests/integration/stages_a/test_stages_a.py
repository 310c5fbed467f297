"""The stage framework, script and assets against the real broker (issue 3): lifecycle events
with real progress, artifacts, idempotent redelivery, cancel, pause/resume, retries through
the Gemini emulator. Workers run in-process; the topics are read directly."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from PIL import Image
from pydantic import SecretStr

from tests.emulators.base import Fail
from tests.emulators.gemini import GeminiEmulator
from tests.support.kafka import unique_name
from tests.support.wait import wait_until
from ytmaker_assets.adapters.speech import best_engine
from ytmaker_assets.settings import AssetsSettings
from ytmaker_assets.stages import AudioWork, AvatarsWork, ImagesWork, SlideMaker
from ytmaker_script.main import writer_for
from ytmaker_script.settings import ScriptSettings
from ytmaker_script.stage import ScriptWork
from ytmaker_shared.artifacts import open_store
from ytmaker_shared.events import (
    CancelTask,
    ControlPayload,
    Event,
    PauseTask,
    ProjectSettings,
    ResumeTask,
    TaskRequested,
    TaskRequestedPayload,
    decode,
)
from ytmaker_shared.kafka import EventProducer, delete_topics, ensure_topics
from ytmaker_shared.script import Script
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import Control, StageWorker
from ytmaker_shared.topics import Topic

pytestmark = pytest.mark.kafka

CONTENT = (
    "Apache Kafka is a distributed event log. Producers append events to topics. Within a "
    "partition, events keep their order. Consumers in a group share the partitions. A consumer "
    "commits the offset of what it processed. After a crash it resumes from that offset."
)


def requested(task_id: str | None = None, segments: int = 3) -> TaskRequested:
    task_id = task_id or "t-" + uuid.uuid4().hex[:10]
    return TaskRequested(
        task_id=task_id,
        project_id="p-" + task_id,
        owner="alice",
        producer="test/1",
        correlation_id="c-" + task_id,
        payload=TaskRequestedPayload(
            title="How Kafka keeps order",
            content=CONTENT,
            settings=ProjectSettings(segments=segments, target_length_seconds=20),
        ),
    )


def control(cls: type, trigger: TaskRequested) -> Event:
    event: Event = trigger.caused(
        cls, producer="gateway/1", payload=ControlPayload(requested_by="alice")
    )
    return event


class Log:
    """Every event of the topics, collected by a group-less consumer from the beginning."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def of(self, task_id: str, type_: str | None = None, stage: Stage | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e.task_id == task_id
            and (type_ is None or e.type == type_)
            and (stage is None or getattr(e, "stage", None) is stage)
        ]

    def has(self, task_id: str, type_: str, stage: Stage | None = None) -> Callable[[], bool]:
        return lambda: bool(self.of(task_id, type_, stage))


@pytest.fixture
async def env(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    prefix = unique_name("stages-a") + "."
    common: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": prefix,
        "topic_partitions": 1,  # one partition: a total order to reason about
        "producer_delivery_timeout_s": 20,
        "artifact_url": f"file://{tmp_path / 'artifacts'}",
        "stage_backoff_base_s": 0.05,
        "stage_backoff_max_s": 0.2,
        "stage_progress_interval_s": 0.05,
    }
    await ensure_topics(ScriptSettings(**common))
    log = Log()
    consumer = AIOKafkaConsumer(
        *(f"{prefix}{t.value}" for t in (Topic.TASKS, Topic.SCRIPT, Topic.ASSETS)),
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()

    async def collect() -> None:
        async for record in consumer:
            log.events.append(decode(record.value))

    collector = asyncio.create_task(collect())
    producer = EventProducer(ScriptSettings(**common), "test")
    await producer.start()
    env: dict[str, Any] = {"common": common, "log": log, "producer": producer, "stops": []}
    try:
        yield env
    finally:
        for stopping, task in env["stops"]:
            stopping.set()
            await asyncio.wait_for(task, 30)
        collector.cancel()
        await consumer.stop()
        await producer.stop()
        await delete_topics(ScriptSettings(**common))


async def start(env: dict[str, Any], worker: StageWorker) -> StageWorker:
    stopping = asyncio.Event()
    task = asyncio.create_task(worker.run(stopping))
    env["stops"].append((stopping, task))
    await wait_until(lambda: worker.ready() or task.done(), timeout=60, what="worker ready")
    if task.done():
        task.result()
    return worker


def script_worker(env: dict[str, Any], writer: Any = None, **overrides: Any) -> StageWorker:
    settings = ScriptSettings(**(env["common"] | overrides))
    return StageWorker(
        settings, "script", [ScriptWork(writer or writer_for(settings))], [Topic.TASKS]
    )


def assets_worker(env: dict[str, Any]) -> StageWorker:
    settings = AssetsSettings(**env["common"])
    works = [ImagesWork(SlideMaker()), AudioWork(best_engine("auto")), AvatarsWork(None)]
    return StageWorker(settings, "assets", works, [Topic.SCRIPT])


async def test_script_then_assets_offline(env: dict[str, Any]) -> None:
    log: Log = env["log"]
    await start(env, script_worker(env))
    await start(env, assets_worker(env))
    trigger = requested()
    await env["producer"].send(Topic.TASKS, trigger)
    t = trigger.task_id
    for stage in (Stage.IMAGES, Stage.AUDIO, Stage.AVATARS):
        await wait_until(log.has(t, "stage.completed", stage), timeout=90, what=f"{stage} done")

    types = [e.type for e in log.of(t, stage=Stage.SCRIPT)]
    assert types[0] == "stage.started" and types[-1] == "stage.completed"
    assert "stage.progress" in types
    script_done = log.of(t, "stage.completed", Stage.SCRIPT)[0]
    assert script_done.causation_id == trigger.event_id
    artifact = script_done.payload.artifacts[0]  # type: ignore[union-attr]
    store = open_store(env["common"]["artifact_url"])
    script = Script.model_validate_json(await store.read_uri(artifact.uri, task_id=t))
    assert len(script.segments) == 3 and script.segments[0].narration.startswith("Apache Kafka")

    images = log.of(t, "stage.completed", Stage.IMAGES)[0].payload  # type: ignore[union-attr]
    assert len(images.artifacts) == 3
    png = Image.open(io.BytesIO(await store.read_uri(images.artifacts[0].uri, task_id=t)))
    assert png.size == (1280, 720)
    progress = [e.payload.completed_steps for e in log.of(t, "stage.progress", Stage.IMAGES)]  # type: ignore[union-attr]
    assert progress == sorted(progress) and progress[-1] == 3

    audio = log.of(t, "stage.completed", Stage.AUDIO)[0].payload  # type: ignore[union-attr]
    assert len(audio.artifacts) == 3 and audio.result["engine"] in {"piper", "espeak-ng", "tone"}
    assert all(s["duration_seconds"] > 0.5 for s in audio.result["segments"])
    avatars = log.of(t, "stage.completed", Stage.AVATARS)[0].payload  # type: ignore[union-attr]
    assert avatars.status == "skipped"
    assert not log.of(t, "stage.failed")


async def test_redelivered_trigger_repeats_nothing(env: dict[str, Any]) -> None:
    log: Log = env["log"]
    worker = await start(env, script_worker(env))
    first = requested()
    await env["producer"].send(Topic.TASKS, first)
    await wait_until(log.has(first.task_id, "stage.completed"), timeout=30)

    def produced() -> list[str]:
        return [e.event_id for e in log.of(first.task_id) if e.type != "task.requested"]

    before = produced()
    await env["producer"].send(Topic.TASKS, first)  # the same event again
    marker = requested()  # one partition: handled after the redelivery
    await env["producer"].send(Topic.TASKS, marker)
    await wait_until(log.has(marker.task_id, "stage.completed"), timeout=30)
    assert len(log.of(first.task_id, "task.requested")) == 2  # the redelivery was consumed
    assert produced() == before  # and produced nothing
    # the marker's job leaves the table just after its completion is sent
    await wait_until(lambda: worker.jobs == {}, timeout=10, what="no job left")


async def test_cancel_stops_the_work_promptly_and_removes_partials(env: dict[str, Any]) -> None:
    log: Log = env["log"]
    running = asyncio.Event()
    store = open_store(env["common"]["artifact_url"])

    class SlowWriter:
        async def write(self, request: TaskRequestedPayload) -> Script:
            await store.put(f"{trigger.task_id}/script/partial.json", b"{}")
            running.set()
            await asyncio.sleep(120)
            raise AssertionError("not cancelled")

    await start(env, script_worker(env, SlowWriter()))
    trigger = requested()
    await env["producer"].send(Topic.TASKS, trigger)
    await asyncio.wait_for(running.wait(), 30)
    assert await store.list(f"{trigger.task_id}/script/")
    sent = asyncio.get_running_loop().time()
    await env["producer"].send(Topic.CONTROL, control(CancelTask, trigger))
    await wait_until(log.has(trigger.task_id, "stage.cancelled"), timeout=10)
    assert asyncio.get_running_loop().time() - sent < 3.0
    await wait_until(log.has(trigger.task_id, "task.cancelled"), timeout=10)
    assert await store.list(f"{trigger.task_id}/script/") == []
    assert not log.of(trigger.task_id, "stage.completed")


async def test_paused_task_starts_when_resumed(env: dict[str, Any]) -> None:
    log: Log = env["log"]
    worker = await start(env, script_worker(env))
    trigger = requested()
    await env["producer"].send(Topic.CONTROL, control(PauseTask, trigger))
    await wait_until(lambda: worker.control.state(trigger.task_id) is Control.PAUSED, timeout=10)
    await env["producer"].send(Topic.TASKS, trigger)
    other = requested()
    await env["producer"].send(Topic.TASKS, other)  # not paused: runs meanwhile
    await wait_until(log.has(other.task_id, "stage.completed"), timeout=30)
    assert not log.of(trigger.task_id, "stage.started")
    await env["producer"].send(Topic.CONTROL, control(ResumeTask, trigger))
    await wait_until(log.has(trigger.task_id, "stage.completed"), timeout=30)


async def test_gemini_failures_are_retried_through_the_emulator(env: dict[str, Any]) -> None:
    log: Log = env["log"]
    emulator = GeminiEmulator()
    emulator.faults.inject("generate", Fail(503), Fail(429))
    async with emulator.server() as server:
        await start(
            env,
            script_worker(
                env, gemini_api_key=SecretStr(emulator.api_key), gemini_base_url=server.url
            ),
        )
        trigger = requested()
        await env["producer"].send(Topic.TASKS, trigger)
        await wait_until(log.has(trigger.task_id, "stage.completed"), timeout=30)
    retrying = log.of(trigger.task_id, "stage.retrying")
    assert [e.payload.attempt for e in retrying] == [2, 3]  # type: ignore[union-attr]
    assert retrying[0].payload.error.code == "gemini_unavailable"  # type: ignore[union-attr]
    assert retrying[1].payload.error.code == "gemini_rate_limited"  # type: ignore[union-attr]
    assert log.of(trigger.task_id, "stage.completed")[0].payload.attempt == 3  # type: ignore[union-attr]


async def test_permanent_model_failure_fails_stage_and_task(env: dict[str, Any]) -> None:
    log: Log = env["log"]
    emulator = GeminiEmulator()
    async with emulator.server() as server:
        await start(
            env,
            script_worker(env, gemini_api_key=SecretStr("wrong-key"), gemini_base_url=server.url),
        )
        trigger = requested()
        await env["producer"].send(Topic.TASKS, trigger)
        await wait_until(log.has(trigger.task_id, "task.failed"), timeout=30)
    failed = log.of(trigger.task_id, "stage.failed")[0]
    assert failed.payload.error.code == "gemini_rejected"  # type: ignore[union-attr]
    assert not log.of(trigger.task_id, "stage.retrying")
