"""The ffmpeg runner: progress as it encodes, errors with their reason, and a prompt clean stop."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.wait import wait_until
from ytmaker_render.adapters import ffmpeg as runner
from ytmaker_render.encoding import ProgressSample


def lavfi_encode(ffmpeg: str, seconds: float, output: Path, *, realtime: bool = False) -> list[str]:
    source = ["-re"] if realtime else []
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-y",
        *source,
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=s=640x360:r=30:d={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-progress",
        "pipe:1",
        "-f",
        "mp4",
        str(output),
    ]


def raw_frames(ffmpeg: str, color: str, seconds: float, *, realtime: bool = False) -> list[str]:
    """A feed: `seconds` of 64×64 `color` at 10 fps, raw gray frames on its standard output."""
    source = ["-re"] if realtime else []
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        *source,
        "-f",
        "lavfi",
        "-i",
        f"color=c={color}:s=64x64:r=10:d={seconds}",
        "-pix_fmt",
        "gray",
        "-f",
        "rawvideo",
        "pipe:1",
    ]


def fed(ffmpeg: str, output: Path, *encode: str) -> list[str]:
    """An ffmpeg that encodes what `raw_frames` feeds it into `output` (raw by default)."""
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        *("-f", "rawvideo", "-pix_fmt", "gray", "-video_size", "64x64", "-framerate", "10"),
        *("-i", "pipe:0"),
        *(encode or ("-c:v", "rawvideo", "-f", "rawvideo")),
        str(output),
    ]


async def test_progress_is_reported_until_the_end(ffmpeg: str, tmp_path: Path) -> None:
    seen: list[ProgressSample] = []

    async def collect(sample: ProgressSample) -> None:
        seen.append(sample)

    output = tmp_path / "out.mp4"
    await runner.run(lavfi_encode(ffmpeg, 2, output), output=output, on_progress=collect)
    assert output.stat().st_size > 0
    assert seen[-1].ended and seen[-1].out_seconds == pytest.approx(2.0, abs=0.1)


async def test_a_bad_input_fails_with_ffmpegs_reason_and_no_file(
    ffmpeg: str, tmp_path: Path
) -> None:
    output = tmp_path / "out.mp4"
    args = [
        ffmpeg,
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(tmp_path / "missing.png"),
        str(output),
    ]
    with pytest.raises(runner.FfmpegFailed) as caught:
        await runner.run(args, output=output)
    assert "missing.png" in caught.value.stderr and not caught.value.signalled
    assert not output.exists()


@pytest.mark.parametrize("case", ["no binary", "arguments too long"])
async def test_an_ffmpeg_that_cannot_start_fails_with_the_reason(
    ffmpeg: str, tmp_path: Path, case: str
) -> None:
    """The system refusing to start it (no binary; arguments past Linux's 128 KiB a string)
    is ffmpeg's failure with the reason, not an unexpected error of the stage."""
    args = (
        [str(tmp_path / "no-ffmpeg"), "-version"]
        if case == "no binary"
        else [ffmpeg, "-filter_complex", "x" * 200_000]
    )
    with pytest.raises(runner.FfmpegFailed) as caught:
        await runner.run(args)
    assert "could not start" in str(caught.value) and not caught.value.signalled


async def test_cancel_ends_ffmpeg_within_a_second_and_removes_the_partial_file(
    ffmpeg: str, tmp_path: Path
) -> None:
    output = tmp_path / "out.mp4"
    samples: list[ProgressSample] = []

    async def collect(sample: ProgressSample) -> None:
        samples.append(sample)

    # -re paces the input in real time: a 60 s encode that is surely running when cancelled.
    task = asyncio.create_task(
        runner.run(
            lavfi_encode(ffmpeg, 60, output, realtime=True), output=output, on_progress=collect
        )
    )
    await wait_until(lambda: samples and output.exists(), timeout=20, what="ffmpeg encoding")
    pids = _ffmpeg_pids(output)
    assert pids, "ffmpeg should be running"
    await _cancelled_within_a_second(task, output, pids)


async def test_feeds_write_one_after_another_into_ffmpegs_input(
    ffmpeg: str, tmp_path: Path
) -> None:
    output = tmp_path / "frames.raw"
    feeds = [raw_frames(ffmpeg, "white", 0.5), raw_frames(ffmpeg, "gray", 0.3)]
    await runner.run(fed(ffmpeg, output), feeds=feeds, output=output)
    alone = [
        (await asyncio.to_thread(subprocess.run, feed, capture_output=True, check=True)).stdout
        for feed in feeds
    ]
    assert [len(frames) // (64 * 64) for frames in alone] == [5, 3]
    assert output.read_bytes() == b"".join(alone)


async def test_a_failing_feed_fails_the_run_with_its_reason_and_no_file(
    ffmpeg: str, tmp_path: Path
) -> None:
    """ffmpeg had frames enough to finish a shorter file; it is stopped, not let finish."""
    output = tmp_path / "frames.raw"
    others = _children()  # the suite's own (a broker, a database), not this test's
    broken = [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(tmp_path / "missing.png")]
    broken += ["-f", "rawvideo", "pipe:1"]
    with pytest.raises(runner.FfmpegFailed) as caught:
        await runner.run(
            fed(ffmpeg, output), feeds=[raw_frames(ffmpeg, "white", 0.5), broken], output=output
        )
    assert "missing.png" in caught.value.stderr and not caught.value.signalled
    assert not output.exists()
    assert not [pid for pid in _children(besides=others) if _alive(pid)]


async def test_a_failing_ffmpeg_fails_with_its_reason_not_its_feeds_broken_pipe(
    ffmpeg: str, tmp_path: Path
) -> None:
    output = tmp_path / "out.mp4"
    encoder = fed(ffmpeg, output, "-c:v", "no-such-encoder", "-f", "mp4")
    with pytest.raises(runner.FfmpegFailed) as caught:  # 30 s of frames: more than a pipe holds
        await runner.run(encoder, feeds=[raw_frames(ffmpeg, "white", 30)], output=output)
    assert "no-such-encoder" in caught.value.stderr and not caught.value.signalled
    assert not output.exists()


async def test_cancel_ends_ffmpeg_and_its_feed_within_a_second(ffmpeg: str, tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    samples: list[ProgressSample] = []

    async def collect(sample: ProgressSample) -> None:
        samples.append(sample)

    encoder = fed(ffmpeg, output, "-c:v", "libx264", "-progress", "pipe:1", "-f", "mp4")
    feeds = [raw_frames(ffmpeg, "white", 60, realtime=True)]  # paced: running when cancelled
    others = _children()
    task = asyncio.create_task(runner.run(encoder, feeds=feeds, output=output, on_progress=collect))
    await wait_until(lambda: samples and output.exists(), timeout=20, what="ffmpeg encoding")
    pids = _children(besides=others)
    assert len(pids) == 2, "ffmpeg and its feed should be running"
    await _cancelled_within_a_second(task, output, pids)


async def test_a_failing_progress_callback_stops_ffmpeg_and_its_feeds(
    ffmpeg: str, tmp_path: Path
) -> None:
    output = tmp_path / "out.mp4"

    async def broken(sample: ProgressSample) -> None:
        raise RuntimeError("the progress could not be reported")

    encoder = fed(ffmpeg, output, "-c:v", "libx264", "-progress", "pipe:1", "-f", "mp4")
    feeds = [raw_frames(ffmpeg, "white", 60, realtime=True)] * 2
    others = _children()
    with pytest.raises(RuntimeError, match="could not be reported"):
        await runner.run(encoder, feeds=feeds, output=output, on_progress=broken)
    assert not output.exists()
    assert not [pid for pid in _children(besides=others) if _alive(pid)]


async def _cancelled_within_a_second(
    task: asyncio.Task[None], output: Path, pids: list[int]
) -> None:
    """Cancels `task` (a run): it ends within the second, leaving no file and none of `pids`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - started < 1.0
    assert not await asyncio.to_thread(output.exists)
    assert not [pid for pid in pids if _alive(pid)]


def _children(besides: Sequence[int] = ()) -> list[int]:
    """This process's children that are still there, but for `besides`: in the side-by-side
    suite a worker also has the broker or the database it started as children."""
    me = str(os.getpid())
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me and int(entry.name) not in besides:
                pids.append(int(entry.name))
    return pids


def _ffmpeg_pids(output: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(output).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
