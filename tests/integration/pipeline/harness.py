"""The four stage services as real processes on a real broker, and a reader of their topics
(issue 3: until the progress service exists, tests read the pipeline topics directly).

Used by test_pipeline.py and bench/pipeline_bench.py. Every run gets its own topic prefix
(hence its own topics and consumer groups), artifact directory and publish directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aiokafka import AIOKafkaConsumer

from ytmaker_shared.events import (
    CancelTask,
    ControlPayload,
    Event,
    ProjectSettings,
    TaskRequested,
    TaskRequestedPayload,
    decode,
)
from ytmaker_shared.kafka import EventProducer, ensure_topics
from ytmaker_shared.settings import ServiceSettings
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import PIPELINE_TOPICS, Topic

SERVICES = ("script", "assets", "render", "upload")
ROOT = Path(__file__).resolve().parents[3]

#: A sample project: six paragraphs of real prose (~200 words, a minute of narration).
SAMPLE_TITLE = "Why the sea rises twice a day"
SAMPLE_CONTENT = """\
Twice a day the sea creeps up the beach and slips away again. Sailors and fishermen have
planned their lives around this rhythm for thousands of years.

The cause is gravity. The moon pulls on the whole Earth, but it pulls hardest on the water
facing it, and that water bulges toward the moon.

On the far side of the planet a second bulge forms, because the Earth itself is pulled away
from the water there. As the Earth turns, every coast passes through both bulges each day.

The sun joins in as well. When sun and moon line up, their pulls add together and the tides
grow large; when they stand at right angles, the tides stay small.

Coastlines shape the rest. A narrow bay can funnel the rising water into a tide many metres
high, while an open shore on a wide sea barely notices the change.

Tide tables turn all of this into forecasts. By following the moon, the sun and the shape of
each harbour, they tell a skipper weeks ahead the hour at which the water will be deep enough
to sail, and the hour at which a sandbank will rise out of the sea.
"""


def requested(
    title: str = SAMPLE_TITLE,
    content: str = SAMPLE_CONTENT,
    *,
    segments: int = 5,
    seconds: int = 60,
) -> TaskRequested:
    task_id = "task-" + uuid.uuid4().hex[:12]
    return TaskRequested(
        task_id=task_id,
        project_id="proj-" + task_id[5:],
        owner="alice",
        producer="test/pipeline",
        correlation_id="corr-" + task_id[5:],
        payload=TaskRequestedPayload(
            title=title,
            content=content,
            settings=ProjectSettings(segments=segments, target_length_seconds=seconds),
        ),
    )


def cancel(trigger: TaskRequested) -> CancelTask:
    event: CancelTask = trigger.caused(
        CancelTask, producer="test/pipeline", payload=ControlPayload(requested_by="alice")
    )
    return event


@dataclass
class Service:
    """One service process. Its JSON logs go to `<root>/logs/<name>-<n>.log`."""

    name: str
    env: dict[str, str]
    log_dir: Path
    #: The command line; default `python -m ytmaker_<name>`.
    command: list[str] | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = (self.log_dir / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            self.command or [sys.executable, "-m", f"ytmaker_{self.name}"],
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no goodbye, no commit, no cleanup."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"{self.name}-*.log"))
        )


@dataclass
class Seen:
    event: Event
    at: float  # time.monotonic() when the reader got it


@dataclass
class Pipeline:
    """Topics, directories and the service processes of one run."""

    bootstrap: str
    root: Path
    prefix: str = field(default_factory=lambda: f"pipe-{uuid.uuid4().hex[:10]}.")
    extra_env: dict[str, str] = field(default_factory=dict)
    per_service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def published(self) -> Path:
        return self.root / "published"

    @property
    def settings(self) -> ServiceSettings:
        return ServiceSettings(
            kafka_bootstrap_servers=self.bootstrap,
            topic_prefix=self.prefix,
            producer_delivery_timeout_s=20,
        )

    def env(self, service: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("YTMAKER_")}
        return {
            **keep,
            "PYTHONUNBUFFERED": "1",
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "YTMAKER_TOPIC_PREFIX": self.prefix,
            "YTMAKER_TOPIC_PARTITIONS": "3",
            "YTMAKER_ARTIFACT_DIR": str(self.artifacts),
            "YTMAKER_PUBLISH_DIR": str(self.published),
            "YTMAKER_STAGE_PROGRESS_INTERVAL_S": "0.2",
            "YTMAKER_STAGE_CREATE_TOPICS": "false",
            "YTMAKER_LOG_LEVEL": "INFO",
            **self.extra_env,
            **self.per_service_env.get(service, {}),
        }

    async def start(self, names: Iterable[str] = SERVICES) -> None:
        settings = self.settings.model_copy(update={"topic_partitions": 3})
        await ensure_topics(settings)
        for name in names:
            service = Service(name, self.env(name), self.root / "logs")
            self.services[name] = service
            service.start()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    async def send(self, topic: Topic, event: Event) -> None:
        async with EventProducer(self.settings, "test") as producer:
            await producer.send(topic, event)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Collect every event of the pipeline topics into `seen` while the block runs."""
        consumer = AIOKafkaConsumer(
            *(self.settings.topics.name(t) for t in PIPELINE_TOPICS),
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        await consumer.start()

        async def pump() -> None:
            async for record in consumer:
                with contextlib.suppress(Exception):
                    self.seen.append(Seen(decode(record.value), time.monotonic()))

        task = asyncio.create_task(pump())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await consumer.stop()

    def events(
        self, task_id: str, type_: str | None = None, stage: Stage | None = None
    ) -> list[Event]:
        return [s.event for s in self.of(task_id, type_, stage)]

    def of(self, task_id: str, type_: str | None = None, stage: Stage | None = None) -> list[Seen]:
        return [
            s
            for s in self.seen
            if s.event.task_id == task_id
            and (type_ is None or s.event.type == type_)
            and (stage is None or getattr(s.event, "stage", None) is stage)
        ]

    def has(self, task_id: str, type_: str, stage: Stage | None = None) -> Callable[[], bool]:
        return lambda: bool(self.of(task_id, type_, stage))

    def finished(self, task_id: str) -> Callable[[], bool]:
        ends = {"task.completed", "task.failed", "task.cancelled"}
        return lambda: any(s.event.type in ends for s in self.of(task_id))

    def logs(self) -> str:
        return "\n".join(
            f"===== {name} =====\n{service.log_text()[-6000:]}"
            for name, service in self.services.items()
        )


def stage_times(pipeline: Pipeline, task_id: str, sent_at: float) -> dict[str, Any]:
    """Wall time per stage, from its `stage.started` to its terminal event, plus the total."""
    out: dict[str, Any] = {}
    for stage in Stage:
        started = pipeline.of(task_id, "stage.started", stage)
        ended = [
            s
            for s in pipeline.of(task_id, stage=stage)
            if s.event.type in ("stage.completed", "stage.failed", "stage.cancelled")
        ]
        if started and ended:
            out[stage.value] = round(ended[-1].at - started[0].at, 2)
    done = [s for s in pipeline.of(task_id) if s.event.type in ("task.completed", "task.failed")]
    if done:
        out["total"] = round(done[-1].at - sent_at, 2)
    return out
