"""What a project with many caption lines costs the render stage (docs/decisions/0125).

    .venv/bin/python -m bench.render_captions [--segments 50] [--chars 5000] [--seconds 10]
        [--avatars none|one|each] [--slide 1280x720] [--supersample 1]

Runs the render stage end to end (`RenderWork.run`, a file artifact store in a temporary
folder, no Kafka) on a made-up project: `--segments` segments, each with a slide of `--slide`
pixels, a narration of `--chars` characters of words and a silent WAV that makes its slot
`--seconds` long, and `--avatars`: none, one presenter clip from the start (what the avatars
stage makes) or a clip per segment (the most render takes), 512×512 at 25 fps; the slides are
zoomed on `--supersample` times the frame (`YTMAKER_RENDER_SUPERSAMPLE`). Prints as JSON the
caption lines, the ffmpeg processes and their inputs and overlay filters (all processes
together), the wall time of the stage, the CPU time of this process and its children, and
the memory a render pod needs (docs/decisions/0137): ffmpeg's peak RSS (the largest one
process reached), this process's own peak RSS during the stage (the service's part: `VmHWM`,
reset at its start), and the peaks of the summed RSS of the ffmpeg processes running at once
and of this process and its children together (sampled every 20 ms: the peak of the sum, not
the sum of peaks); the size of the files on disk at the end (the page cache they may take in
a pod), the load average before and after, and the error when the stage failed (`--timeout`
cancels it, which stops ffmpeg).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import subprocess
import tempfile
import threading
import time
import uuid
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ytmaker_render.adapters import ffmpeg
from ytmaker_render.filtergraph import EncodeOptions
from ytmaker_render.stage import RenderOptions, RenderWork
from ytmaker_shared.artifacts import FileArtifactStore
from ytmaker_shared.events import StageCompleted, StageCompletedPayload, StageProgressPayload
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import JobContext, ProgressReporter

PAUSE_SECONDS = 0.35  # RenderOptions' default: a slot is its narration plus this
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


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


def clip(ffmpeg_path: str, path: Path, seconds: float) -> Path:
    """A presenter-like clip: 512×512 H.264 at 25 fps."""
    source = f"testsrc2=s=512x512:r=25:d={seconds}"
    args = ["-loglevel", "error", "-y", "-f", "lavfi", "-i", source, "-pix_fmt", "yuv420p"]
    subprocess.run([ffmpeg_path, *args, str(path)], check=True)
    return path


async def project(
    store: FileArtifactStore,
    task: str,
    folder: Path,
    segments: int,
    chars: int,
    seconds: float,
    avatars: str,
    slide_size: tuple[int, int],
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
        Image.new("RGB", slide_size, (40 * i % 256, 80, 160)).save(slide)
        wav = silence(folder / f"a{i}.wav", seconds - PAUSE_SECONDS)
        images.append((await store.put_file(f"{task}/images/{i + 1:02d}.png", slide)).artifact())
        audio.append((await store.put_file(f"{task}/audio/{i + 1:02d}.wav", wav)).artifact())
    clips = []
    if avatars != "none":
        presenter = clip(ffmpeg.ffmpeg_executable(), folder / "presenter.mp4", seconds)
        for i in range(segments if avatars == "each" else 1):
            key = f"{task}/avatars/{i + 1:02d}.mp4"
            clips.append((await store.put_file(key, presenter)).artifact())
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
            **base,
            stage=Stage.AVATARS,
            payload=StageCompletedPayload(
                status="completed" if clips else "skipped", artifacts=tuple(clips)
            ),
        ),
    ]


class TreeMemory:
    """The peaks of this process's children's summed RSS and of that sum plus this process's
    own RSS, sampled together in a thread: the peak of the sum, not the sum of the peaks."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.children_peak_kib = 0
        self.tree_peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        parent = str(os.getpid())
        while not self._stop.wait(self.interval):
            children = 0
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    children += _rss_kib(entry.path, parent)
            own = _resident_kib("/proc/self/status", "VmRSS")
            self.children_peak_kib = max(self.children_peak_kib, children)
            self.tree_peak_kib = max(self.tree_peak_kib, own + children)


def _rss_kib(proc: str, parent: str) -> int:
    """The RSS of process `proc` (a /proc folder) if it is a child of `parent`, else 0."""
    try:
        with open(f"{proc}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command's name
    except (OSError, IndexError):  # ended meanwhile
        return 0
    if fields[1] != parent:  # field 4, the parent's id
        return 0
    return int(fields[21]) * PAGE_KIB  # field 24, the resident pages


def _resident_kib(status: str, field: str) -> int:
    """`VmRSS` (now) or `VmHWM` (the peak) of a /proc status file, in KiB."""
    with open(status) as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    """Start this process's `VmHWM` over from its current RSS (Linux 4.0+)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _files_mib(folder: Path) -> int:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20)


async def measure(
    segments: int,
    chars: int,
    seconds: float,
    avatars: str,
    slide_size: tuple[int, int],
    supersample: float,
    timeout: float,
) -> dict[str, Any]:
    commands: list[Sequence[str]] = []
    real_run = ffmpeg.run

    async def recording_run(args: Sequence[str], **kwargs: Any) -> None:
        commands.extend([list(args), *(list(feed) for feed in kwargs.get("feeds", ()))])
        await real_run(args, **kwargs)

    ffmpeg.run = recording_run
    task = "bench-" + uuid.uuid4().hex[:8]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ytmaker-bench-render-") as tmp:
        folder = Path(tmp)
        store = FileArtifactStore(folder / "store")
        events = await project(store, task, folder, segments, chars, seconds, avatars, slide_size)
        encode = EncodeOptions(supersample=supersample)
        work = RenderWork(store, RenderOptions(ffmpeg.ffmpeg_executable(), encode))
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
        own_before = _resident_kib("/proc/self/status", "VmRSS")
        _reset_peak_rss()
        started = time.monotonic()
        try:
            with TreeMemory() as memory:
                result = await asyncio.wait_for(work.run(ctx), timeout)
            video_seconds = result.result["duration_seconds"]
        except Exception as exc:  # the failure is the measurement
            error = f"{type(exc).__name__}: {str(exc)[-300:]}"
            video_seconds = None
        wall = time.monotonic() - started
        own_peak = _resident_kib("/proc/self/status", "VmHWM")
        lines = len(list((folder / "scratch" / "captions").glob("caption-*-*.png")))
        files = _files_mib(folder)
    ffmpeg.run = real_run
    graphs = [
        args[args.index("-filter_complex") + 1] for args in commands if "-filter_complex" in args
    ]
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return {
        "segments": segments,
        "avatars": avatars,
        "slide": "x".join(map(str, slide_size)),
        "supersample": supersample,
        "chars_per_segment": chars,
        "slot_seconds": seconds,
        "caption_lines": lines,
        "ffmpeg_processes": len(commands),
        "ffmpeg_inputs": sum(args.count("-i") for args in commands),
        "overlay_filters": sum(graph.count("overlay=") for graph in graphs),
        "filters": sum(graph.count(";") + 1 for graph in graphs),
        "video_seconds": video_seconds,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(sum(r.ru_utime + r.ru_stime for r in (own, children)), 1),
        "ffmpeg_peak_rss_mib": round(children.ru_maxrss / 1024),
        "ffmpeg_peak_total_rss_mib": round(memory.children_peak_kib / 1024),
        "service_rss_before_mib": round(own_before / 1024),
        "service_peak_rss_mib": round(own_peak / 1024),
        "tree_peak_total_rss_mib": round(memory.tree_peak_kib / 1024),
        "files_mib": files,
        "load_average": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "error": error,
    }


def size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument("--chars", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--avatars", choices=("none", "one", "each"), default="none")
    parser.add_argument("--slide", type=size, default=(1280, 720), help="WIDTHxHEIGHT")
    parser.add_argument("--supersample", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    report = asyncio.run(
        measure(
            args.segments,
            args.chars,
            args.seconds,
            args.avatars,
            args.slide,
            args.supersample,
            args.timeout,
        )
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
