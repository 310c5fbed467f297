"""What a local broker costs to start: cold start, clean stop, warm restart, memory."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..ports import free_port
from .broker import LocalKafka
from .jars import fetch
from .settings import DEFAULT_START_TIMEOUT


@dataclass(frozen=True)
class StartupMeasurement:
    """Start-up cost of a local broker (jar fetch excluded)."""

    cold_seconds: float
    """First start on an empty data directory: format + JVM start + first successful probe."""
    format_seconds: float
    """The storage-format part of :attr:`cold_seconds`."""
    warm_seconds: float
    """Restart on the same, already formatted data directory after a clean stop."""
    stop_seconds: float
    """Clean stop (SIGTERM until the process is gone) after the cold start."""
    rss_bytes_cold: int | None
    """VmRSS of the broker JVM right after the cold start."""
    rss_bytes_warm: int | None
    """VmRSS of the broker JVM right after the warm restart."""

    def describe(self) -> str:
        def mib(value: int | None) -> str:
            return "?" if value is None else f"{value / 2**20:.0f} MiB"

        return (
            f"cold start {self.cold_seconds:.2f}s (format {self.format_seconds:.2f}s), "
            f"clean stop {self.stop_seconds:.2f}s, warm restart {self.warm_seconds:.2f}s; "
            f"RSS after start {mib(self.rss_bytes_cold)} (cold), {mib(self.rss_bytes_warm)} "
            "(warm)"
        )


def measure_startup(
    base_dir: Path | None = None, *, timeout: float = DEFAULT_START_TIMEOUT
) -> StartupMeasurement:
    """Start a throw-away broker on free ports and a temporary data directory twice.

    Measures the cold start (empty data directory), the clean stop and the warm restart.
    Fetches the jars first (not measured). The temporary directory is created in *base_dir*
    (default: the system temp dir) and removed afterwards.
    """
    fetch()
    with tempfile.TemporaryDirectory(prefix="devkafka-measure-", dir=base_dir) as tmp:
        broker = LocalKafka(
            Path(tmp),
            port=free_port(),
            controller_port=free_port(),
            honour_env=False,
        )
        try:
            broker.start(timeout=timeout)
            cold = broker.last_startup_seconds or 0.0
            fmt = broker.last_format_seconds or 0.0
            rss_cold = broker.rss_bytes()
            began = time.monotonic()
            broker.stop()
            stopped = time.monotonic() - began
            broker.start(timeout=timeout)
            warm = broker.last_startup_seconds or 0.0
            rss_warm = broker.rss_bytes()
        finally:
            broker.stop()
    return StartupMeasurement(cold, fmt, warm, stopped, rss_cold, rss_warm)
