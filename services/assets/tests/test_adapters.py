"""Stability and D-ID adapters against their local emulators, failures included."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest
from PIL import Image

from tests.emulators.base import Fail, Hang
from tests.emulators.did import DIDEmulator
from tests.emulators.stability import StabilityEmulator
from tests.support.wait import wait_until
from ytmaker_assets.adapters.did import DIDAvatars
from ytmaker_assets.adapters.stability import StabilityImages
from ytmaker_shared.artifacts import MemoryArtifactStore
from ytmaker_shared.events import TaskRequested, TaskRequestedPayload
from ytmaker_shared.script import Script, Segment
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import JobContext, PermanentError, ProgressReporter, TransientError

SEGMENT = Segment(
    index=1, narration="Logs keep order.", caption="Order", image_prompt="a log", duration_seconds=5
)
SCRIPT = Script(title="T", description="D", segments=[SEGMENT])


def context() -> JobContext:
    async def emit(_: object) -> None:
        return None

    event = TaskRequested(
        task_id="t1",
        project_id="p1",
        owner="o",
        producer="test",
        correlation_id="c",
        payload=TaskRequestedPayload(title="T", content="C."),
    )
    return JobContext(
        event=event,
        stage=Stage.AVATARS,
        attempt=1,
        store=MemoryArtifactStore("adapters"),
        progress=ProgressReporter(emit, interval_s=0),
        scratch=Path("/tmp"),
        log=logging.LoggerAdapter(logging.getLogger("test")),
    )


async def test_stability_image_is_fitted_to_720p() -> None:
    emulator = StabilityEmulator()
    async with emulator.server() as server:
        images = StabilityImages(emulator.api_key, base_url=server.url)
        data, content_type, ext = await images.make(SCRIPT, SEGMENT, "p1")
    assert Image.open(io.BytesIO(data)).size == (1280, 720)
    assert content_type == "image/png" and ext == "png" and emulator.prompts == ["a log"]


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        (Fail(429, retry_after=2), TransientError, "stability_rate_limited"),
        (Fail(500), TransientError, "stability_unavailable"),
        (Fail(403), PermanentError, "stability_rejected"),
        (Hang(2), TransientError, "stability_timeout"),
    ],
)
async def test_stability_failures(fault: Fail | Hang, kind: type, code: str) -> None:
    emulator = StabilityEmulator()
    emulator.faults.inject("generate", fault)
    async with emulator.server() as server:
        images = StabilityImages(emulator.api_key, base_url=server.url, timeout_s=0.5)
        with pytest.raises(kind) as caught:
            await images.make(SCRIPT, SEGMENT, "p1")
    assert caught.value.code == code
    if isinstance(fault, Fail) and fault.retry_after:
        assert caught.value.retry_after_s == 2


async def test_stability_bad_key_is_permanent() -> None:
    async with StabilityEmulator().server() as server:
        with pytest.raises(PermanentError, match="unauthorized"):
            await StabilityImages("nope", base_url=server.url).make(SCRIPT, SEGMENT, "p1")


async def test_did_talk_is_created_polled_and_fetched() -> None:
    emulator = DIDEmulator(polls_to_done=3)
    async with emulator.server() as server:
        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="http://x/face.jpg", poll_interval_s=0
        )
        data, content_type = await avatars.clip(context(), SEGMENT)
    assert data == emulator.clip and content_type == "video/mp4"
    assert next(iter(emulator.talks.values()))["polls"] == 3


async def test_did_key_goes_to_the_api_host_only() -> None:
    emulator = DIDEmulator(polls_to_done=2)
    async with emulator.server() as api, emulator.server() as storage:
        emulator.result_base_url = storage.url  # another port: another origin
        avatars = DIDAvatars(
            emulator.api_key, base_url=api.url, source_url="http://x/face.jpg", poll_interval_s=0
        )
        data, _ = await avatars.clip(context(), SEGMENT)  # the API refuses calls without key
    assert data == emulator.clip
    assert emulator.result_authorizations == [None]


@pytest.mark.parametrize(
    ("talk_id", "result_url", "error"),
    [
        ("../../admin", None, TransientError),
        ("a/b?c=d", None, TransientError),
        ({"id": 1}, None, TransientError),
        (None, "file:///etc/passwd", PermanentError),
        (None, ["not", "a", "url"], PermanentError),
    ],
)
async def test_did_hostile_answers_are_refused(
    talk_id: object, result_url: object, error: type[Exception]
) -> None:
    emulator = DIDEmulator(polls_to_done=1)
    emulator.talk_id_override = talk_id
    emulator.result_url_override = result_url
    async with emulator.server() as server:
        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="u", poll_interval_s=0
        )
        with pytest.raises(error, match="d-id_bad_answer"):
            await avatars.clip(context(), SEGMENT)
    assert emulator.result_authorizations == []


async def test_did_failed_talk_is_permanent_and_5xx_transient() -> None:
    emulator = DIDEmulator()
    async with emulator.server() as server:
        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="u", poll_interval_s=0
        )
        emulator.faults.inject("create", Fail(503))
        with pytest.raises(TransientError):
            await avatars.clip(context(), SEGMENT)
        emulator.fail_talks = True
        with pytest.raises(PermanentError, match="FaceError"):
            await avatars.clip(context(), SEGMENT)


async def test_did_job_cancelled_while_its_talk_is_made_deletes_it() -> None:
    emulator = DIDEmulator(polls_to_done=10_000)
    emulator.create_answer_delay_s = 0.5
    async with emulator.server() as server:
        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="u", poll_interval_s=0.05
        )
        task = asyncio.create_task(avatars.clip(context(), SEGMENT))
        await wait_until(lambda: bool(emulator.talks), timeout=5)  # made, not answered yet
        made = list(emulator.talks)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: len(emulator.deleted) == 1, timeout=5)
        assert emulator.deleted == made
        await avatars.aclose()


async def test_did_cancelled_job_deletes_its_talk() -> None:
    emulator = DIDEmulator(polls_to_done=10_000)
    async with emulator.server() as server:
        avatars = DIDAvatars(
            emulator.api_key, base_url=server.url, source_url="u", poll_interval_s=0.05
        )
        task = asyncio.create_task(avatars.clip(context(), SEGMENT))
        await wait_until(lambda: bool(emulator.talks), timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: len(emulator.deleted) == 1, timeout=5)
