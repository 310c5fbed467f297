"""What a project with many caption lines costs the render stage (docs/decisions/0125).

    .venv/bin/python -m bench.render_captions [--segments 50] [--chars 5000] [--seconds 10]

Runs the render stage end to end (`RenderWork.run`, a memory artifact store, no Kafka) on a
made-up project: `--segments` segments, each with a narration of `--chars` characters of
words and a silent WAV that makes its slot `--seconds` long. Prints as JSON the caption lines,
ffmpeg's inputs and overlay filters, the wall time of the stage, ffmpeg's peak RSS, and the
error when the stage failed (`--timeout` cancels it, which stops ffmpeg).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import resource
import tempfile
import time
import uuid
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ytmaker_render.adapters import ffmpeg
from ytmaker_render.stage import RenderOptions, RenderWork
from ytmaker_shared.artifacts import MemoryArtifactStore
from ytmaker_shared.events import StageCompleted, StageCompletedPayload, StageProgressPayload
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import JobContext, ProgressReporter

PAUSE_SECONDS = 0.35  # RenderOptions' default: a slot is its narration plus this


def narration(chars: int, seed: int) -> str:
    """Words of 2–11 letters, `chars` characters in all."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < chars:
        word = "".join(rng.choice("abcdefghijklmnoprstuvw") for _ in range(rng.randint(2, 11)))
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:chars].strip()


def silence(path: Path, seconds: float, rate: int = 22050) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return path


async def project(
    store: MemoryArtifactStore, task: str, folder: Path, segments: int, chars: int, seconds: float
) -> list[StageCompleted]:
    script = {
        "title": "Many captions",
        "description": "A long narration per segment.",
        "tags": [],
        "segments": [
            {
                "index": i + 1,
                "narration": narration(chars, i),
                "caption": f"Segment {i + 1}",
                "image_prompt": "p",
                "duration_seconds": min(120.0, max(3.0, seconds)),
            }
            for i in range(segments)
        ],
    }
    await store.put(f"{task}/script/script.json", json.dumps(script).encode())
    images, audio = [], []
    for i in range(segments):
        slide = folder / f"s{i}.png"
        Image.new("RGB", (1280, 720), (40 * i % 256, 80, 160)).save(slide)
        wav = silence(folder / f"a{i}.wav", seconds - PAUSE_SECONDS)
        images.append((await store.put_file(f"{task}/images/{i + 1:02d}.png", slide)).artifact())
        audio.append((await store.put_file(f"{task}/audio/{i + 1:02d}.wav", wav)).artifact())
    base: dict[str, Any] = {
        "task_id": task,
        "project_id": "p",
        "owner": "u",
        "producer": "bench",
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
            **base, stage=Stage.AVATARS, payload=StageCompletedPayload(status="skipped")
        ),
    ]


async def measure(segments: int, chars: int, seconds: float, timeout: float) -> dict[str, Any]:
    commands: list[Sequence[str]] = []
    real_run = ffmpeg.run

    async def recording_run(args: Sequence[str], **kwargs: Any) -> None:
        commands.append(list(args))
        await real_run(args, **kwargs)

    ffmpeg.run = recording_run
    store = MemoryArtifactStore(uuid.uuid4().hex)
    task = "bench-" + uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="ytmaker-bench-render-") as tmp:
        folder = Path(tmp)
        events = await project(store, task, folder, segments, chars, seconds)
        work = RenderWork(store, RenderOptions(ffmpeg=ffmpeg.ffmpeg_executable()))
        for event in events:
            await work.admit(event)

        async def emit(payload: StageProgressPayload) -> None:
            pass

        (folder / "scratch").mkdir()
        ctx = JobContext(
            event=events[-1],
            stage=Stage.RENDER,
            attempt=1,
            store=store,
            progress=ProgressReporter(emit),
            scratch=folder / "scratch",
            log=logging.LoggerAdapter(logging.getLogger("bench")),
        )
        error = None
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(work.run(ctx), timeout)
            video_seconds = result.result["duration_seconds"]
        except Exception as exc:  # the failure is the measurement
            error = f"{type(exc).__name__}: {str(exc)[-300:]}"
            video_seconds = None
        wall = time.monotonic() - started
        lines = len(list((folder / "scratch" / "captions").glob("caption-*-*.png")))
    ffmpeg.run = real_run
    args = commands[0] if commands else []
    graph = args[args.index("-filter_complex") + 1] if "-filter_complex" in args else ""
    return {
        "segments": segments,
        "chars_per_segment": chars,
        "slot_seconds": seconds,
        "caption_lines": lines,
        "ffmpeg_inputs": sum(1 for a in args if a == "-i"),
        "overlay_filters": graph.count("overlay="),
        "filters": graph.count(";") + 1 if graph else 0,
        "video_seconds": video_seconds,
        "wall_seconds": round(wall, 1),
        "ffmpeg_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "error": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument("--chars", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    report = asyncio.run(measure(args.segments, args.chars, args.seconds, args.timeout))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
