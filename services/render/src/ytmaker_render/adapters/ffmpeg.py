"""Running ffmpeg: the static binary imageio-ffmpeg ships, progress from `-progress pipe:1`,
and a prompt, clean stop: a cancel ends a running ffmpeg within a second and leaves no
partial file.

`run` starts ffmpeg in its own process group, parses its progress as it goes and calls
`on_progress`. Its `feeds`, other ffmpeg commands, run one after another with their standard
output on its standard input (the render's pieces, each writing one slot's frames to the
encoder: docs/decisions/0130); its input ends when the last one does. ffmpeg is asked to die
with its parent (Linux `PR_SET_PDEATHSIG`): a render service killed with SIGKILL leaves no
encoder running behind it. When the calling task is cancelled (cancel, soft time limit,
shutdown) ffmpeg gets SIGTERM, then SIGKILL after `kill_after_s`, the partial output is
deleted, and the cancellation goes on; a feed running then is stopped the same way. A
non-zero exit raises `FfmpegFailed` with the tail of stderr, and so does an ffmpeg the system
would not start (no binary, arguments past its limits). A feed that fails fails the run with
its own reason and stops ffmpeg, unless ffmpeg had ended first (a feed cannot write to an
ffmpeg that is gone): then ffmpeg's exit tells.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from ytmaker_render.encoding import ProgressParser, ProgressSample

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

ProgressCallback = Callable[[ProgressSample], Awaitable[None]]


class FfmpegFailed(RuntimeError):
    """ffmpeg exited with an error. `signalled` is True when a signal ended it (the machine,
    not the input, is to blame: worth another attempt)."""

    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(f"ffmpeg exited with {returncode}: {stderr[-1500:]}")
        self.returncode = returncode
        self.stderr = stderr
        self.signalled = returncode < 0


def ffmpeg_executable() -> str:
    """The ffmpeg binary: `YTMAKER_FFMPEG` if set, else the one imageio-ffmpeg ships."""
    configured = os.environ.get("YTMAKER_FFMPEG")
    if configured:
        return configured
    import imageio_ffmpeg  # imported late: it looks for the binary on import of the function

    return str(imageio_ffmpeg.get_ffmpeg_exe())


async def run(
    args: Sequence[str],
    *,
    feeds: Sequence[Sequence[str]] = (),
    output: Path | None = None,
    on_progress: ProgressCallback | None = None,
    kill_after_s: float = 0.5,
) -> None:
    """Run ffmpeg to completion, its `feeds` writing to its standard input; see the module
    doc for cancellation and errors."""
    reader, writer = os.pipe()
    # ffmpeg's standard input ends when `_feed` closes this, after the last feed (at once
    # without feeds); the `with` closes it on any other way out.
    with os.fdopen(writer, "wb", buffering=0) as frames:
        try:
            process = await _start(args, stdin=reader, stdout=asyncio.subprocess.PIPE)
        finally:
            os.close(reader)  # ffmpeg has its own: a feed must not write to an ffmpeg gone
        stderr_tail: deque[str] = deque(maxlen=40)
        tasks = [
            asyncio.ensure_future(_read_progress(process, on_progress)),
            asyncio.ensure_future(_read_stderr(process, stderr_tail)),
            asyncio.ensure_future(_feed(feeds, frames, process, kill_after_s)),
        ]
        try:
            await asyncio.gather(*tasks)
            returncode = await process.wait()
        except BaseException:
            for task in tasks:  # the feed running, if any, is stopped; none starts after
                task.cancel()
            await asyncio.wait(tasks)
            await _stop(process, kill_after_s)
            if output is not None:
                await asyncio.to_thread(output.unlink, missing_ok=True)
            raise
    if returncode != 0:
        if output is not None:
            await asyncio.to_thread(output.unlink, missing_ok=True)
        raise FfmpegFailed(returncode, "\n".join(stderr_tail))


async def _start(args: Sequence[str], *, stdin: int, stdout: int) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *args,
            stdin=stdin,
            stdout=stdout,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    except OSError as exc:  # no binary, arguments past the system's limits: no exit code
        raise FfmpegFailed(1, f"ffmpeg could not start: {exc.strerror}") from exc


async def _feed(
    feeds: Sequence[Sequence[str]],
    frames: BinaryIO,
    consumer: asyncio.subprocess.Process,
    kill_after_s: float,
) -> None:
    """Run `feeds` one after another with their standard output on `frames`, then close it:
    the end of `consumer`'s input. A failed feed raises FfmpegFailed, unless `consumer` has
    ended: then its exit tells, not the feed's broken pipe."""
    try:
        for args in feeds:
            process = await _start(args, stdin=asyncio.subprocess.DEVNULL, stdout=frames.fileno())
            stderr_tail: deque[str] = deque(maxlen=40)
            try:
                await _read_stderr(process, stderr_tail)
                returncode = await process.wait()
            except BaseException:
                await _stop(process, kill_after_s)
                raise
            if returncode != 0:
                if await _ends(consumer, within=kill_after_s):
                    return
                raise FfmpegFailed(returncode, "\n".join(stderr_tail))
    finally:
        frames.close()


async def _ends(process: asyncio.subprocess.Process, *, within: float) -> bool:
    """Whether `process` ends within `within` seconds (at once if it has ended already)."""
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), within)
    except TimeoutError:
        return False
    return True


async def _read_progress(
    process: asyncio.subprocess.Process, on_progress: ProgressCallback | None
) -> None:
    assert process.stdout is not None
    parser = ProgressParser()
    async for raw in process.stdout:
        sample = parser.feed(raw.decode(errors="replace"))
        if sample is not None and on_progress is not None:
            await on_progress(sample)


async def _read_stderr(process: asyncio.subprocess.Process, tail: deque[str]) -> None:
    assert process.stderr is not None
    async for raw in process.stderr:
        tail.append(raw.decode(errors="replace").rstrip())


async def _stop(process: asyncio.subprocess.Process, kill_after_s: float) -> None:
    """SIGTERM the process group, SIGKILL it if still there after `kill_after_s`; reap."""
    if process.returncode is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), kill_after_s)
    except TimeoutError:
        log.warning("ffmpeg ignored SIGTERM, killing it")
        _signal_group(process, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), 2.0)
    except asyncio.CancelledError:  # cancelled again while it stops: no grace left
        _signal_group(process, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):  # gone before the caller goes on, as promised
            await asyncio.wait_for(asyncio.shield(process.wait()), 2.0)
        raise


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent dies (Linux only; else nothing)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
