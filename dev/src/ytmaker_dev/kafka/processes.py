"""Processes that are not necessarily our children: pid files, liveness, command lines,
waiting for an exit, memory, and the tail of a log. Linux (``/proc``) where it helps."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path


def read_pid(pid_file: Path) -> int | None:
    """The pid written in *pid_file*, or None when it is missing or holds no number."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """True when process *pid* exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie is dead


def cmdline(pid: int) -> list[str] | None:
    """The command line of *pid*, or None when ``/proc`` does not tell."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def wait_pid_gone(pid: int, timeout: float) -> bool:
    """Wait until *pid* (not necessarily our child) is gone; True when it is."""
    deadline = time.monotonic() + timeout
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (OSError, AttributeError):
        fd = -1
    try:
        while pid_alive(pid):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if fd >= 0:
                select.select([fd], [], [], min(left, 1.0))
            else:
                time.sleep(min(left, 0.1))
        return True
    finally:
        if fd >= 0:
            os.close(fd)


def rss_bytes(pid: int) -> int | None:
    """Resident set size of *pid* in bytes (``VmRSS`` of ``/proc/<pid>/status``), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tail(path: Path, lines: int = 30) -> str:
    """The last *lines* lines of the text file *path* ("" when it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
