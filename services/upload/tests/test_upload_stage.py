"""The upload stage without Kafka: a render completion in, the publication and the task's end
out, through the framework's JobRunner (retries included); YouTube via the emulator."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.emulators.youtube import Cut, Drip, Flood, LoseAnswer, Status, YouTubeEmulator
from ytmaker_shared.artifacts import MemoryArtifactStore
from ytmaker_shared.events import (
    Event,
    ProjectSettings,
    StageCompleted,
    StageCompletedPayload,
    StageProgressed,
    StageRetrying,
    TaskCompleted,
    TaskRequested,
    TaskRequestedPayload,
)
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import ControlBoard, Job, JobRunner, StagePolicy
from ytmaker_upload.adapters.channel import YouTubeChannel
from ytmaker_upload.adapters.local import LocalPublisher
from ytmaker_upload.adapters.youtube import (
    OAuthClient,
    RetryPolicy,
    YouTubePublisher,
    youtube_http,
)
from ytmaker_upload.domain import CHUNK_UNIT, VideoMetadata
from ytmaker_upload.errors import PublishError
from ytmaker_upload.publication import Progress, Publication, Publisher
from ytmaker_upload.stage import StoreJournal, UploadWork

BASE = {"project_id": "p", "owner": "u", "producer": "test", "correlation_id": "c"}


async def render_done(store: MemoryArtifactStore, task: str, size: int) -> StageCompleted:
    video = await store.put(f"{task}/render/video.mp4", os.urandom(size), "video/mp4")
    thumb = await store.put(f"{task}/render/thumbnail.jpg", b"\xff\xd8" + os.urandom(500))
    return StageCompleted(
        **BASE,
        task_id=task,
        stage=Stage.RENDER,
        payload=StageCompletedPayload(
            artifacts=(video.artifact(), thumb.artifact()),
            result={
                "title": "Tides explained",
                "description": "Why the sea rises.",
                "tags": ["sea"],
                "language": "en",
                "duration_seconds": 61.2,
            },
        ),
    )


async def run_job(
    work: UploadWork, store: MemoryArtifactStore, trigger: Event, policy: StagePolicy | None = None
) -> tuple[list[Event], list[Event]]:
    emitted: list[Event] = []

    async def emit(event: Event) -> None:
        emitted.append(event)

    job = Job(
        work=work,
        event=trigger,
        policy=policy or StagePolicy(backoff_base_s=0.01, backoff_max_s=0.02),
    )
    runner = JobRunner(
        job,
        producer_name="upload/test",
        emit=emit,
        store=store,
        control=ControlBoard(),
        slots=asyncio.Semaphore(1),
        progress_interval_s=0,
    )
    terminal = await runner.run()
    assert terminal is not None
    return emitted, terminal


async def test_without_credentials_the_video_is_published_locally_and_the_task_completes(
    tmp_path: Path,
) -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "t-" + uuid.uuid4().hex[:8]
    work = UploadWork(store, LocalPublisher(tmp_path / "pub"), "private")
    requested = TaskRequested(
        **BASE,
        task_id=task,
        payload=TaskRequestedPayload(
            title="Tides", content="c.", settings=ProjectSettings(privacy="unlisted")
        ),
    )
    assert await work.admit(requested) is False
    trigger = await render_done(store, task, 3 * 2**20)
    assert await work.admit(trigger) is True

    emitted, terminal = await run_job(work, store, trigger)

    completed, task_completed = terminal
    assert isinstance(completed, StageCompleted) and completed.stage is Stage.UPLOAD
    assert isinstance(task_completed, TaskCompleted)
    result = task_completed.payload.result
    assert result["platform"] == "local"
    assert result["published_url"].endswith(f"/pub/{task}/video.mp4")
    assert result["manifest_uri"].endswith(f"/pub/{task}/manifest.json")
    assert result["source_video_uri"] == trigger.payload.artifacts[0].uri
    assert (tmp_path / "pub" / task / "metadata.json").read_text().count('"unlisted"') == 1
    assert completed.payload.result == result
    progress = [e.payload.progress for e in emitted if e.type == "stage.progress"]
    assert progress[0] == 0 and progress[-1] == 100 and progress == sorted(progress)


def channel(
    emulator: YouTubeEmulator,
    http: httpx.AsyncClient,
    store: MemoryArtifactStore,
    tries: int = 3,
    refresh_token: str | None = None,
) -> Publisher:
    oauth = OAuthClient(
        emulator.client_id,
        SecretStr(emulator.client_secret),
        SecretStr(refresh_token or emulator.refresh_token),
        emulator.token_url,
    )
    youtube = YouTubePublisher(
        http,
        oauth,
        api_base=emulator.base_url,
        chunk_bytes=CHUNK_UNIT,
        retry=RetryPolicy(max_tries=tries, base_delay_s=0.01, max_delay_s=0.02),
    )
    return YouTubeChannel(youtube, StoreJournal(store))


async def test_youtube_upload_resumes_its_session_in_the_next_attempt_and_never_twice(
    tmp_path: Path,
) -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "t-" + uuid.uuid4().hex[:8]
    trigger = await render_done(store, task, 6 * CHUNK_UNIT + 99)
    async with YouTubeEmulator() as emulator, httpx.AsyncClient(timeout=5) as http:
        # Attempt 1: two chunks go up, then the connection is cut and YouTube stays down
        # past the adapter's tries: the stage retries.
        emulator.inject("chunk", Status(308), Status(308), Cut(after_bytes=CHUNK_UNIT + 10))
        emulator.inject("status", Status(503), Status(503), Status(503))
        work = UploadWork(store, channel(emulator, http, store), "private")
        emitted, terminal = await run_job(work, store, trigger)
        assert [e.type for e in emitted].count("stage.retrying") == 1
        assert isinstance(terminal[-1], TaskCompleted)
        assert emulator.count("initiate") == 1  # attempt 2 resumed the same session
        [video] = emulator.videos.values()
        assert len(video.data) == 6 * CHUNK_UNIT + 99
        assert video.thumbnail is not None
        result = terminal[-1].payload.result
        assert result["platform"] == "youtube" and result["video_id"] == video.id
        assert result["thumbnail_uri"].endswith(f"/vi/{video.id}/hqdefault.jpg")
        assert result["published_url"].endswith(video.id)
        assert video.resource["snippet"]["title"] == "Tides explained"
        # A redelivered trigger whose outcome was lost re-runs the work: nothing is uploaded.
        await run_job(work, store, trigger)
        assert emulator.count("initiate") == 1 and len(emulator.videos) == 1


async def test_a_video_whose_answer_was_lost_is_not_published_again_once_its_session_is_gone(
    tmp_path: Path,
) -> None:
    """The last chunk reached YouTube and the video was made, but the answer was lost and
    YouTube stayed down past the attempt; the task runs again once the session is gone (a
    week later on YouTube). The video is found by its marker and used: one video, not two."""
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "t-" + uuid.uuid4().hex[:8]
    trigger = await render_done(store, task, CHUNK_UNIT // 2 + 3)  # one chunk, the last
    async with YouTubeEmulator() as emulator, httpx.AsyncClient(timeout=5) as http:
        emulator.inject("chunk", LoseAnswer())
        emulator.inject("status", Status(503), Status(503))
        work = UploadWork(store, channel(emulator, http, store), "private")
        once = StagePolicy(max_attempts=1, backoff_base_s=0.01, backoff_max_s=0.02)
        _, failed = await run_job(work, store, trigger, once)
        assert [e.type for e in failed] == ["stage.failed", "task.failed"]
        [video] = emulator.videos.values()
        emulator.expire_sessions()
        _, terminal = await run_job(work, store, trigger)
    assert isinstance(terminal[-1], TaskCompleted)
    assert list(emulator.videos) == [video.id] and emulator.count("initiate") == 1
    assert terminal[-1].payload.result["video_id"] == video.id
    assert video.thumbnail is not None


async def test_answers_past_their_bounds_fail_the_attempt_as_retryable_in_bounded_time(
    tmp_path: Path,
) -> None:
    """YouTube answering past the bounds on every try of an attempt (gigabytes, or a byte at a
    time): the attempt ends within its tries, bounded in time and in memory, with a retryable
    error; the stage retries, and the next attempt publishes."""
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "t-" + uuid.uuid4().hex[:8]
    trigger = await render_done(store, task, 2 * CHUNK_UNIT + 7)
    flood = Flood(64 * 2**20)
    async with (
        YouTubeEmulator() as emulator,
        youtube_http(5, answer_within_s=0.5) as http,
        asyncio.timeout(60),
    ):
        emulator.inject("initiate", flood, Drip(every_s=0.05, for_s=30), flood)
        work = UploadWork(store, channel(emulator, http, store), "private")
        emitted, terminal = await run_job(work, store, trigger)
    [retrying] = [e for e in emitted if isinstance(e, StageRetrying)]
    assert retrying.payload.error.code == "upload_unavailable"
    assert "AnswerTooLarge" in retrying.payload.error.message
    assert isinstance(terminal[-1], TaskCompleted)
    assert emulator.count("initiate") == 4 and len(emulator.videos) == 1
    assert not any(s.whole for s in emulator.streamed)


async def test_a_task_is_published_once_even_when_a_later_render_brings_other_bytes(
    tmp_path: Path,
) -> None:
    """The journal's sha256 keeps a resumed session on the bytes it began with; once a video
    is up, a second render event of the task (other bytes: a replay, a forged record) is not
    a reason to publish a second video."""
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "t-" + uuid.uuid4().hex[:8]
    first = await render_done(store, task, CHUNK_UNIT + 1)
    async with YouTubeEmulator() as emulator, httpx.AsyncClient(timeout=5) as http:
        work = UploadWork(store, channel(emulator, http, store), "private")
        _, published = await run_job(work, store, first)
        again = await render_done(store, task, 2 * CHUNK_UNIT)  # other bytes, same keys
        _, republished = await run_job(work, store, again)
    assert emulator.count("initiate") == 1 and len(emulator.videos) == 1
    ids = {t.payload.result["video_id"] for t in (published[-1], republished[-1])}  # type: ignore[union-attr]
    assert ids == {next(iter(emulator.videos))}


async def test_a_refused_thumbnail_does_not_unpublish_the_video(tmp_path: Path) -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "t-" + uuid.uuid4().hex[:8]
    trigger = await render_done(store, task, CHUNK_UNIT)
    async with YouTubeEmulator() as emulator, httpx.AsyncClient(timeout=5) as http:
        emulator.inject("thumbnail", Status(403))
        work = UploadWork(store, channel(emulator, http, store), "private")
        _, terminal = await run_job(work, store, trigger)
    result = terminal[-1].payload.result
    assert "Forbidden" in result["thumbnail_error"] or "injected" in result["thumbnail_error"]
    assert result["thumbnail_uri"] is None and result["video_id"]


async def test_rejected_credentials_fail_the_stage_and_the_task_at_once(tmp_path: Path) -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "t-" + uuid.uuid4().hex[:8]
    trigger = await render_done(store, task, CHUNK_UNIT)
    async with YouTubeEmulator() as emulator, httpx.AsyncClient() as http:
        work = UploadWork(store, channel(emulator, http, store, refresh_token="revoked"), "private")
        emitted, terminal = await run_job(work, store, trigger)
    assert [e.type for e in terminal] == ["stage.failed", "task.failed"]
    assert terminal[0].payload.error.code == "oauth_refused"
    assert "stage.retrying" not in [e.type for e in emitted]


@pytest.mark.parametrize("missing", ["video.mp4"])
async def test_a_render_without_a_video_is_a_permanent_error(tmp_path: Path, missing: str) -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    trigger = await render_done(store, "t-x", 10)
    broken = trigger.model_copy(
        update={
            "payload": trigger.payload.model_copy(
                update={"artifacts": trigger.payload.artifacts[1:]}
            )
        }
    )
    work = UploadWork(store, LocalPublisher(tmp_path), "private")
    _, terminal = await run_job(work, store, broken)
    assert terminal[0].payload.error.code == "missing_artifact"


@pytest.mark.parametrize(
    ("hostile", "code"),
    [("another task's video", "invalid_artifact"), ("a name that is a path", "missing_artifact")],
)
async def test_a_render_naming_what_is_not_its_own_video_is_refused(
    tmp_path: Path, hostile: str, code: str
) -> None:
    """A render event names its task's artifacts by URI and name: one naming somebody else's
    video would publish it under this task, one named `../..` would be written outside the
    attempt's scratch folder."""
    store = MemoryArtifactStore(uuid.uuid4().hex)
    theirs = await render_done(store, "t-theirs", 10)
    trigger = await render_done(store, "t-mine", 10)
    video = trigger.payload.artifacts[0]
    if hostile == "another task's video":
        video = theirs.payload.artifacts[0]
    else:
        video = video.model_copy(update={"name": "../../../escaped.mp4"})
    forged = trigger.model_copy(
        update={
            "payload": trigger.payload.model_copy(
                update={"artifacts": (video, *trigger.payload.artifacts[1:])}
            )
        }
    )
    publisher = ScriptedPublisher([], [])
    work = UploadWork(store, publisher, "private")
    _, terminal = await run_job(work, store, forged)
    assert terminal[0].payload.error.code == code  # type: ignore[union-attr]
    assert publisher.metadata == []  # nothing was published
    assert not list(tmp_path.parent.rglob("escaped.mp4"))


class ScriptedPublisher:
    """Reports the progress it is given, fails with the errors it is given, then publishes."""

    platform = "fake"

    def __init__(self, progress: list[tuple[int, int]], errors: list[PublishError]) -> None:
        self.progress = progress
        self.errors = errors
        self.metadata: list[VideoMetadata] = []

    async def publish(
        self,
        task_id: str,
        video: Path,
        thumbnail: Path | None,
        metadata: VideoMetadata,
        on_progress: Progress,
    ) -> Publication:
        self.metadata.append(metadata)
        for done, total in self.progress:
            await on_progress(done, total)
        if self.errors:
            raise self.errors.pop(0)
        return Publication("fake", "v1", "https://example.test/v1", "https://example.test/v1")


async def test_a_video_beyond_two_gib_reports_its_progress() -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    trigger = await render_done(store, "t-big", 10)
    big = 5 * 2**30
    claimed = trigger.payload.artifacts[0].model_copy(update={"size": 2**63 - 1})
    trigger = trigger.model_copy(
        update={
            "payload": trigger.payload.model_copy(
                update={"artifacts": (claimed, *trigger.payload.artifacts[1:])}
            )
        }
    )
    publisher = ScriptedPublisher([(2**30, big), (big, big)], [])
    emitted, terminal = await run_job(UploadWork(store, publisher, "private"), store, trigger)
    assert isinstance(terminal[-1], TaskCompleted)
    progress = [e.payload for e in emitted if isinstance(e, StageProgressed)]
    assert progress[-1].progress == 100
    assert any(p.progress == 20 for p in progress)


async def test_a_retry_after_from_youtube_is_the_least_delay_before_the_next_attempt() -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    trigger = await render_done(store, "t-wait", 10)
    slow_down = PublishError("upload_unavailable", "asked to wait", True, retry_after_s=0.5)
    publisher = ScriptedPublisher([], [slow_down])
    policy = StagePolicy(backoff_base_s=0.01, backoff_max_s=5)
    emitted, terminal = await run_job(
        UploadWork(store, publisher, "private"), store, trigger, policy
    )
    assert isinstance(terminal[-1], TaskCompleted)
    [retrying] = [e for e in emitted if isinstance(e, StageRetrying)]
    assert retrying.payload.delay_seconds >= 0.5


@pytest.mark.parametrize(
    "result",
    [
        {"title": "T", "tags": 5},
        {"title": "T", "tags": "sea"},
        {"title": "T", "tags": [1, {"a": 1}, None]},
        {"title": "T", "language": {"x": 1}},
        {"title": ["T"]},
    ],
)
async def test_render_metadata_of_the_wrong_type_is_a_clear_error(
    tmp_path: Path, result: dict[str, Any]
) -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    trigger = await render_done(store, "t-meta", 10)
    trigger = trigger.model_copy(
        update={"payload": trigger.payload.model_copy(update={"result": result})}
    )
    publisher = ScriptedPublisher([], [])
    _, terminal = await run_job(UploadWork(store, publisher, "private"), store, trigger)
    assert [e.type for e in terminal] == ["stage.failed", "task.failed"]
    assert terminal[0].payload.error.code == "invalid_metadata"
    assert not publisher.metadata
