"""The whole pipeline on the real broker (issue 3): script, assets, render and upload as four
separate processes (`python -m ytmaker_<service>`), offline, with no API key anywhere.

- A sample project becomes a published MP4 whose duration and streams are checked by decoding
  it with ffmpeg, with a thumbnail and a manifest.
- A cancel during render stops ffmpeg within about a second and leaves no partial file.
- The render service killed with SIGKILL mid-encode and restarted still completes the task.
- With credentials, upload publishes to the YouTube emulator through a connection cut.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.emulators.youtube import Cut, Status, YouTubeEmulator
from tests.integration.pipeline.harness import Pipeline, cancel, requested, stage_times
from tests.support.wait import wait_until
from ytmaker_render.adapters import probe
from ytmaker_render.adapters.ffmpeg import ffmpeg_executable
from ytmaker_shared.events import StageCompleted, StageProgressed, TaskCompleted
from ytmaker_shared.kafka import delete_topics
from ytmaker_shared.stages import Stage
from ytmaker_shared.topics import Topic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(420)]

RUN_TIMEOUT = 240.0


@pytest.fixture
async def pipeline(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Pipeline]:
    run = Pipeline(kafka_bootstrap, tmp_path)
    try:
        yield run
    finally:
        run.stop()
        await delete_topics(run.settings)


def path_of(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def scratch_dirs(task_id: str) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"ytmaker-render-{task_id[:16]}-*"))


def encoders_of(task_id: str) -> list[int]:
    """PIDs of ffmpeg processes working in this task's render scratch folder."""
    marker = f"ytmaker-render-{task_id[:16]}-".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if marker in cmdline and b"ffmpeg" in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


async def test_a_sample_project_becomes_a_playable_published_video(pipeline: Pipeline) -> None:
    await pipeline.start()
    trigger = requested()
    task = trigger.task_id
    async with pipeline.reading():
        sent = time.monotonic()
        await pipeline.send(Topic.TASKS, trigger)
        try:
            await wait_until(pipeline.finished(task), timeout=RUN_TIMEOUT, what="task end")
        except AssertionError:
            pytest.fail(f"the task did not finish\n{pipeline.logs()}")
    print("stage wall times:", stage_times(pipeline, task, sent))

    [done] = pipeline.events(task, "task.completed")
    assert isinstance(done, TaskCompleted), pipeline.logs()
    for stage in Stage:
        [completed] = pipeline.events(task, "stage.completed", stage)
        assert isinstance(completed, StageCompleted)
        assert completed.payload.status == ("skipped" if stage is Stage.AVATARS else "completed")
    # Progress was honest: render reported the frames it encoded, upload the bytes it copied.
    render_progress = [
        e.payload
        for e in pipeline.events(task, "stage.progress", Stage.RENDER)
        if isinstance(e, StageProgressed)
    ]
    encode = [p for p in render_progress if p.current_step == "encode"]
    assert len(encode) >= 2 and encode == sorted(encode, key=lambda p: p.progress)
    assert all(p.total_steps and p.total_steps > 1000 for p in encode)  # frames of ~1 minute

    result = done.payload.result
    assert result["platform"] == "local"
    video = path_of(result["published_url"])
    thumbnail = path_of(result["thumbnail_uri"])
    manifest = json.loads(path_of(result["manifest_uri"]).read_text())
    assert manifest["task_id"] == task and manifest["metadata"]["title"] == trigger.payload.title
    assert video.stat().st_size == manifest["video"]["size"]
    assert thumbnail.read_bytes()[:2] == b"\xff\xd8"

    info = await probe.decode(ffmpeg_executable(), video)
    v, a = info.first("video"), info.first("audio")
    assert v is not None and v.codec == "h264" and v.size == (1280, 720) and v.fps == 30
    assert a is not None and a.codec == "aac"
    assert info.duration_seconds is not None and 35 <= info.duration_seconds <= 90
    assert info.decoded_seconds == pytest.approx(info.duration_seconds, abs=0.2)
    assert info.decoded_frames == pytest.approx(info.duration_seconds * 30, abs=3)
    assert probe.is_faststart(video)
    rendered = pipeline.events(task, "stage.completed", Stage.RENDER)[0]
    assert isinstance(rendered, StageCompleted)
    assert rendered.payload.result["duration_seconds"] == pytest.approx(
        info.duration_seconds, abs=0.1
    )
    # Redelivery and restarts aside, nothing ran twice.
    assert len(pipeline.events(task, "stage.started", Stage.RENDER)) == 1
    assert len(pipeline.events(task, "task.completed")) == 1


async def test_cancel_during_render_stops_ffmpeg_at_once_and_leaves_no_partial_file(
    pipeline: Pipeline,
) -> None:
    # A slow preset makes sure the encode is still running when the cancel arrives.
    pipeline.per_service_env["render"] = {"YTMAKER_RENDER_PRESET": "veryslow"}
    await pipeline.start()
    trigger = requested()
    task = trigger.task_id
    async with pipeline.reading():
        await pipeline.send(Topic.TASKS, trigger)
        try:
            await wait_until(lambda: encoders_of(task), timeout=RUN_TIMEOUT, what="ffmpeg")
        except AssertionError:
            pytest.fail(f"render never started ffmpeg\n{pipeline.logs()}")
        await wait_until(
            lambda: any(
                isinstance(e, StageProgressed) and e.payload.current_step == "encode"
                for e in pipeline.events(task, "stage.progress", Stage.RENDER)
            ),
            timeout=60,
            what="encoding progress",
        )
        encoders = encoders_of(task)
        await pipeline.send(Topic.CONTROL, cancel(trigger))
        sent = time.monotonic()
        await wait_until(lambda: not encoders_of(task), timeout=10, what="ffmpeg gone")
        stopped_after = time.monotonic() - sent
        await wait_until(
            pipeline.has(task, "stage.cancelled", Stage.RENDER), timeout=20, what="cancelled"
        )
        await wait_until(pipeline.has(task, "task.cancelled"), timeout=20, what="task.cancelled")

    print(f"ffmpeg {encoders} ended {stopped_after:.2f}s after the cancel was sent")
    # Sent → read by render's control consumer → SIGTERM: about a second in all.
    assert stopped_after < 1.5
    assert not encoders_of(task)
    render_dir = pipeline.artifacts / task / "render"
    assert not render_dir.exists() or not any(render_dir.iterdir())
    assert not scratch_dirs(task)
    assert not pipeline.events(task, "stage.completed", Stage.RENDER)
    assert not pipeline.events(task, "stage.started", Stage.UPLOAD)


async def test_render_killed_mid_encode_and_restarted_still_completes_the_task(
    pipeline: Pipeline,
) -> None:
    await pipeline.start()
    trigger = requested(segments=3, seconds=30)
    task = trigger.task_id
    async with pipeline.reading():
        await pipeline.send(Topic.TASKS, trigger)
        try:
            await wait_until(lambda: encoders_of(task), timeout=RUN_TIMEOUT, what="ffmpeg")
        except AssertionError:
            pytest.fail(f"render never started ffmpeg\n{pipeline.logs()}")
        render = pipeline.services["render"]
        render.kill()
        # ffmpeg dies with its parent (PR_SET_PDEATHSIG): nothing keeps encoding.
        await wait_until(lambda: not encoders_of(task), timeout=5, what="orphan ffmpeg gone")
        assert not pipeline.events(task, "stage.completed", Stage.RENDER)
        render.start()
        try:
            await wait_until(pipeline.finished(task), timeout=RUN_TIMEOUT, what="task end")
        except AssertionError:
            pytest.fail(f"the task did not finish after the restart\n{pipeline.logs()}")

    [done] = pipeline.events(task, "task.completed")
    assert isinstance(done, TaskCompleted), pipeline.logs()
    assert len(pipeline.events(task, "stage.started", Stage.RENDER)) == 2  # killed, then redone
    assert len(pipeline.events(task, "stage.completed", Stage.RENDER)) == 1
    info = await probe.decode(ffmpeg_executable(), path_of(done.payload.result["published_url"]))
    assert info.first("video") is not None and info.first("audio") is not None
    assert info.decoded_seconds == pytest.approx(info.duration_seconds or 0, abs=0.2)


async def test_with_credentials_upload_publishes_to_youtube_through_a_cut_connection(
    pipeline: Pipeline,
) -> None:
    async with YouTubeEmulator() as youtube:
        pipeline.per_service_env["upload"] = {
            "YTMAKER_YOUTUBE_CLIENT_ID": youtube.client_id,
            "YTMAKER_YOUTUBE_CLIENT_SECRET": youtube.client_secret,
            "YTMAKER_YOUTUBE_REFRESH_TOKEN": youtube.refresh_token,
            "YTMAKER_YOUTUBE_TOKEN_URL": youtube.token_url,
            "YTMAKER_YOUTUBE_API_BASE": youtube.base_url,
            "YTMAKER_YOUTUBE_CHUNK_MIB": "0.25",
            "YTMAKER_YOUTUBE_BACKOFF_BASE_S": "0.05",
        }
        youtube.inject("chunk", Status(308), Cut(after_bytes=300_000))
        youtube.inject("status", Status(503))
        await pipeline.start()
        trigger = requested(segments=2, seconds=20)
        task = trigger.task_id
        async with pipeline.reading():
            await pipeline.send(Topic.TASKS, trigger)
            try:
                await wait_until(pipeline.finished(task), timeout=RUN_TIMEOUT, what="task end")
            except AssertionError:
                pytest.fail(f"the task did not finish\n{pipeline.logs()}")

        [done] = pipeline.events(task, "task.completed")
        assert isinstance(done, TaskCompleted), pipeline.logs()
        [video] = youtube.videos.values()
        result = done.payload.result
        assert result["platform"] == "youtube" and result["video_id"] == video.id
        assert video.resource["snippet"]["title"] == trigger.payload.title
        assert video.resource["status"]["privacyStatus"] == "private"
        assert (
            video.sha256
            == hashlib.sha256(path_of(result["source_video_uri"]).read_bytes()).hexdigest()
        )
        assert video.thumbnail is not None and video.thumbnail[:2] == b"\xff\xd8"
        assert youtube.count("status") >= 2  # asked where it stood after the cut
        # Progress was the bytes YouTube acknowledged, chunk by chunk.
        uploads = [
            e.payload
            for e in pipeline.events(task, "stage.progress", Stage.UPLOAD)
            if isinstance(e, StageProgressed)
        ]
        assert uploads[0].completed_steps == 0
        assert uploads[-1].completed_steps == uploads[-1].total_steps == len(video.data)
