"""The render stage end to end without Kafka: join through `admit`, then a real encode of a
short three-segment video from a memory artifact store, checked by decoding it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from ytmaker_render.adapters import ffmpeg as ffmpeg_adapter
from ytmaker_render.adapters import probe
from ytmaker_render.filtergraph import EncodeOptions
from ytmaker_render.stage import RenderOptions, RenderWork
from ytmaker_shared.artifacts import MemoryArtifactStore
from ytmaker_shared.events import (
    Artifact,
    StageCompleted,
    StageCompletedPayload,
    StageProgressPayload,
)
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import JobContext, PermanentError, ProgressReporter

NARRATION = [1.5, 2.0, 1.2]
# Nearly the most a segment may say (4,999 of 5,000 characters), in wide letters: 125 lines.
MANY_LINES = " ".join(["WWWW"] * 1000)


async def stage_assets(
    media: Any,
    store: MemoryArtifactStore,
    task: str,
    tmp: Path,
    avatar: bool,
    narration: str = "n",
    segments: int = len(NARRATION),
) -> list[StageCompleted]:
    script = {
        "title": "Tides",
        "description": "Why the sea rises.",
        "tags": ["sea"],
        "segments": [
            {
                "index": i + 1,
                "narration": narration,
                "caption": f"Caption number {i + 1}",
                "image_prompt": "p",
                "duration_seconds": 3.0,
            }
            for i in range(segments)
        ],
    }
    await store.put(f"{task}/script/script.json", json.dumps(script).encode())
    images, audio = [], []
    for i in range(segments):
        slide = media.slide(tmp / f"s{i}.png", 40 * i, size=(1024, 768))  # not 16:9 on purpose
        images.append(
            (await store.put_file(f"{task}/images/segment-{i + 1:02d}.png", slide)).artifact()
        )
        tone = media.tone(tmp / f"a{i}.wav", NARRATION[i % len(NARRATION)], 300 + 100 * i)
        audio.append(
            (await store.put_file(f"{task}/audio/segment-{i + 1:02d}.wav", tone)).artifact()
        )
    clips: list[Artifact] = []
    if avatar:
        clip = media.clip(tmp / "presenter.mp4", 2)
        clips.append((await store.put_file(f"{task}/avatars/presenter.mp4", clip)).artifact())
    base = {
        "task_id": task,
        "project_id": "p",
        "owner": "u",
        "producer": "assets/t",
        "correlation_id": "c",
    }
    return [
        StageCompleted(
            **base, stage=Stage.IMAGES, payload=StageCompletedPayload(artifacts=tuple(images))
        ),
        StageCompleted(
            **base, stage=Stage.AUDIO, payload=StageCompletedPayload(artifacts=tuple(audio))
        ),
        StageCompleted(
            **base,
            stage=Stage.AVATARS,
            payload=StageCompletedPayload(
                status="completed" if avatar else "skipped", artifacts=tuple(clips)
            ),
        ),
    ]


def context(
    store: MemoryArtifactStore, trigger: StageCompleted, tmp: Path, seen: list[StageProgressPayload]
) -> JobContext:
    async def emit(payload: StageProgressPayload) -> None:
        seen.append(payload)

    scratch = tmp / "scratch"
    scratch.mkdir()
    return JobContext(
        event=trigger,
        stage=Stage.RENDER,
        attempt=1,
        store=store,
        progress=ProgressReporter(emit, interval_s=0.0),
        scratch=scratch,
        log=logging.LoggerAdapter(logging.getLogger("test")),
    )


def recorded_commands(monkeypatch: pytest.MonkeyPatch) -> list[list[list[str]]]:
    """The argument lists of each run of ffmpeg from now on: the encoder's, then its feeds'."""
    commands: list[list[list[str]]] = []
    run = ffmpeg_adapter.run

    async def recording(args: list[str], **kwargs: Any) -> None:
        commands.append([list(args), *(list(feed) for feed in kwargs.get("feeds", ()))])
        await run(args, **kwargs)

    monkeypatch.setattr(ffmpeg_adapter, "run", recording)
    return commands


@pytest.mark.parametrize(
    ("avatar", "narration"),
    [(False, MANY_LINES), (True, "n")],
    ids=["hundreds-of-caption-lines", "avatar"],
)
async def test_render_makes_a_playable_720p30_video_timed_by_the_narration(
    ffmpeg: str,
    media: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    avatar: bool,
    narration: str,
) -> None:
    commands = recorded_commands(monkeypatch)
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "task-" + uuid.uuid4().hex[:8]
    events = await stage_assets(media, store, task, tmp_path, avatar, narration)
    work = RenderWork(store, RenderOptions(ffmpeg=ffmpeg))
    assert [await work.admit(e) for e in events] == [False, False, True]
    # The join is in the store, not in memory: a new instance sees it.
    assert await RenderWork(store, RenderOptions(ffmpeg=ffmpeg)).admit(events[-1])

    seen: list[StageProgressPayload] = []
    result = await work.run(context(store, events[-1], tmp_path, seen))

    names = {a.name: a for a in result.artifacts}
    assert set(names) == {"video.mp4", "thumbnail.jpg"}
    video = tmp_path / "out.mp4"
    task = events[-1].task_id
    video.write_bytes(await store.read_uri(names["video.mp4"].uri, task_id=task))
    info = await probe.decode(ffmpeg, video)
    expected = sum(max(2.0, round((n + 0.35) * 30) / 30) for n in NARRATION)  # min 2 s
    assert info.duration_seconds == pytest.approx(expected, abs=0.1)
    assert info.decoded_seconds == pytest.approx(expected, abs=0.1)
    v, a = info.first("video"), info.first("audio")
    assert v is not None and v.codec == "h264" and v.size == (1280, 720) and v.fps == 30
    assert a is not None and a.codec == "aac"
    assert probe.is_faststart(video)
    assert (await store.read_uri(names["thumbnail.jpg"].uri, task_id=task))[:2] == b"\xff\xd8"
    assert result.result["duration_seconds"] == pytest.approx(expected, abs=0.1)
    steps = [p.progress for p in seen]
    assert steps == sorted(steps) and steps[-1] == 100.0 and len(steps) >= 2
    assert any(p.current_step == "encode" for p in seen)
    # Every caption line was an input and an overlay of its own (here 375 lines: 381 inputs;
    # 50 segments of the longest narration made an argument list Linux refuses, decision
    # 0125). Per segment now: the slide and its caption track, in the ffmpeg of each slot it
    # is seen in (decision 0130: its own, and the next one's fade), and its narration, in the
    # encoder with the frames and the avatar.
    lines = len(list((tmp_path / "scratch" / "captions").glob("caption-*.png")))
    assert lines == (3 if avatar else 375)
    ((encoder, *pieces),) = commands
    assert encoder.count("-i") == 1 + 3 + avatar
    assert [piece.count("-i") for piece in pieces] == [2, 4, 4]
    graphs = [args[args.index("-filter_complex") + 1] for args in (encoder, *pieces)]
    assert [graph.count("overlay=") for graph in graphs] == [avatar, 1, 2, 2]


async def test_ffmpegs_memory_does_not_grow_with_the_segments(
    ffmpeg: str, media: Any, tmp_path: Path
) -> None:
    """One graph of every segment kept each clip's buffers to the end: 1.6 GiB of ffmpeg for
    fifty segments, some 28 MiB more a segment (decision 0130); here 150 MiB for three
    segments and 410 for twelve. Slot by slot, the ffmpeg processes running at once take as
    much for twelve as for three: 165–195 MiB, as the encoder's peak meets a piece's or not."""
    peaks = {}
    for segments in (3, 12):
        folder = tmp_path / f"{segments}-segments"
        folder.mkdir()
        store = MemoryArtifactStore(uuid.uuid4().hex)
        task = "task-" + uuid.uuid4().hex[:8]
        events = await stage_assets(
            media, store, task, folder, False, "A few words to caption.", segments
        )
        options = RenderOptions(ffmpeg=ffmpeg, encode=EncodeOptions(preset="ultrafast"))
        work = RenderWork(store, options)
        for event in events:
            await work.admit(event)
        peaks[segments] = await peak_rss_of_ffmpeg(work.run(context(store, events[-1], folder, [])))
    assert peaks[12] < peaks[3] + 100, peaks


async def peak_rss_of_ffmpeg(run: Awaitable[object]) -> float:
    """Await `run`; the most RSS (MiB) this process's ffmpeg children had at once, sampled
    every 20 ms."""
    task = asyncio.ensure_future(run)
    peak = 0
    while not task.done():
        peak = max(peak, ffmpeg_rss_kib())
        await asyncio.wait([task], timeout=0.02)
    task.result()
    return peak / 1024


def ffmpeg_rss_kib() -> int:
    me, page_kib = str(os.getpid()), os.sysconf("SC_PAGE_SIZE") // 1024
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name, rest = (entry / "stat").read_text().rsplit(")", 1)
            except (OSError, ValueError):  # ended meanwhile
                continue
            fields = rest.split()  # from field 3 on: the parent's id, ..., the resident pages
            if fields[1] == me and "(ffmpeg" in name:
                total += int(fields[21]) * page_kib
    return total


async def test_a_segment_without_an_image_fails_permanently(
    ffmpeg: str, media: Any, tmp_path: Path
) -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "task-" + uuid.uuid4().hex[:8]
    images, audio, avatars = await stage_assets(media, store, task, tmp_path, avatar=False)
    images = images.model_copy(
        update={"payload": StageCompletedPayload(artifacts=images.payload.artifacts[:2])}
    )
    work = RenderWork(store, RenderOptions(ffmpeg=ffmpeg))
    for event in (images, audio, avatars):
        await work.admit(event)
    with pytest.raises(PermanentError, match="no image for segments \\[3\\]"):
        await work.run(context(store, avatars, tmp_path, []))


@pytest.mark.parametrize(
    ("key", "broken", "named"),
    [
        ("images/segment-03.png", "not a picture", "the image of segment 3"),
        ("images/segment-03.png", "truncated", "the image of segment 3"),
        ("audio/segment-02.wav", "not a picture", "the narration of segment 2"),
        ("avatars/presenter.mp4", "truncated", "avatar clip 1"),
    ],
    ids=["garbage-slide", "truncated-slide", "garbage-narration", "truncated-avatar"],
)
async def test_an_input_ffmpeg_cannot_read_fails_the_render_before_anything_is_encoded(
    ffmpeg: str,
    media: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    broken: str,
    named: str,
) -> None:
    """The slides are read slot by slot (decision 0130): a bad last one was found after every
    slot before it was encoded. Every input is read once first (decision 0137); a truncated
    slide opens and fails only when decoded."""
    commands = recorded_commands(monkeypatch)
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "task-" + uuid.uuid4().hex[:8]
    events = await stage_assets(media, store, task, tmp_path, avatar=True)
    good = await store.read(f"{task}/{key}")
    await store.put(
        f"{task}/{key}", b"not a picture" if broken == "not a picture" else good[: len(good) // 2]
    )
    work = RenderWork(store, RenderOptions(ffmpeg=ffmpeg))
    for event in events:
        await work.admit(event)
    with pytest.raises(PermanentError) as caught:
        await work.run(context(store, events[-1], tmp_path, []))
    assert caught.value.code == "unreadable_input", caught.value.message
    assert caught.value.message.startswith(f"ffmpeg cannot read {named}:"), caught.value.message
    assert commands == []  # the encoder never started
    assert not (tmp_path / "scratch" / "video.mp4").exists()


async def test_concurrent_admits_of_one_task_lose_nothing(
    ffmpeg: str, media: Any, tmp_path: Path
) -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    events = await stage_assets(media, store, "t-" + uuid.uuid4().hex[:6], tmp_path, avatar=False)
    work = RenderWork(store, RenderOptions(ffmpeg=ffmpeg))
    fired = await asyncio.gather(*(work.admit(e) for e in events))
    assert sum(fired) == 1
