"""The machine as /proc shows it: CPU busy, CPU per process, who listens on a port.

All figures come from the kernel's counters, read before and after a measured window, so the
measuring itself costs two reads per process per window. CPU per process is utime + stime of
`/proc/<pid>/stat` (every thread of the process, e.g. the broker's JVM), in % of one core; the
machine's busy share is everything but idle and iowait in `/proc/stat`, in % of all cores. That
includes steal: the time the hypervisor gave this virtual machine's cores to someone else,
reported on its own as well (% of one core), since on a shared host it is the noise a round's
figures carry. Beside its CPU, each process's write system calls (`syscw` of `/proc/<pid>/io`,
every thread: write, writev, pwrite, which libuv, the JVM, redis-server and SQLite use; not
send/sendmsg): a socket's is a message to another process, a file's (the read model's SQLite)
a page written.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int, int]:
    """(busy, steal, total) clock ticks of all cores since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, steal, total


def process_ticks(pid: int) -> int | None:
    """utime + stime of `pid` in clock ticks; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[11]) + int(fields[12])


def write_calls(pid: int) -> int | None:
    """The write system calls (write, writev, pwrite) `pid` has made; None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("syscw:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def parent_of(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[1])


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def descendants(root: int) -> list[int]:
    """Every living process below `root` (children, their children, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = parent_of(int(entry))
            if parent is not None:
                parents.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def listening_pid(port: int) -> int | None:
    """The process that listens on TCP `port` (IPv4 or IPv6), from /proc/net and the fds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    return int(entry)
            except OSError:
                continue
    return None


@dataclass
class CpuSnapshot:
    at: float
    busy: int
    steal: int
    total: int
    processes: dict[str, int] = field(default_factory=dict)  # label → ticks
    writes: dict[str, int] = field(default_factory=dict)  # label → write system calls


def snapshot(processes: dict[str, int]) -> CpuSnapshot:
    """CPU counters of the machine and of `processes` (label → pid) at this instant."""
    busy, steal, total = machine_ticks()
    return CpuSnapshot(
        time.time(),
        busy,
        steal,
        total,
        _of_living(process_ticks, processes),
        _of_living(write_calls, processes),
    )


def _of_living(counter: Callable[[int], int | None], processes: dict[str, int]) -> dict[str, int]:
    """`counter` of each process still there (label → count)."""
    counts = {label: counter(pid) for label, pid in processes.items()}
    return {label: count for label, count in counts.items() if count is not None}


def _grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """How much each counter present in both grew."""
    return {label: after[label] - count for label, count in before.items() if label in after}


def cpu_between(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, object]:
    """`machine_busy_pct` (of all cores, steal included), `steal_pct_of_one_core`,
    `processes` (label → % of one core) and `writes_per_s` (label → write system calls a
    second) over the window; a process present in only one snapshot is left out."""
    wall = max(1e-6, after.at - before.at)
    total = max(1, after.total - before.total)
    ticks = _grown(before.processes, after.processes)
    calls = _grown(before.writes, after.writes)
    return {
        "seconds": round(wall, 2),
        "machine_busy_pct": round(100.0 * (after.busy - before.busy) / total, 1),
        "steal_pct_of_one_core": round(100.0 * (after.steal - before.steal) / TICKS / wall, 1),
        "processes": {label: round(100.0 * n / TICKS / wall, 1) for label, n in ticks.items()},
        "writes_per_s": {label: round(n / wall) for label, n in calls.items()},
    }


def load_average() -> float:
    return os.getloadavg()[0]


def machine_info() -> dict[str, object]:
    """What the figures were measured on."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
        mem_gb = round(mem_kb / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
