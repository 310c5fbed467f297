"""The ffmpeg runner: progress as it encodes, errors with their reason, and a prompt clean stop."""

from __future__ import annotations

import asyncio
import os
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
    loop = asyncio.get_running_loop()
    started = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - started < 1.0
    assert not output.exists()
    assert not [pid for pid in pids if _alive(pid)]


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
