"""Running a service process: JSON logs, health server, the garbage collector's schedule
(gcpolicy.py), and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ytmaker_shared import gcpolicy
from ytmaker_shared.health import HealthServer, Readiness
from ytmaker_shared.kafka.admin import wait_for_broker
from ytmaker_shared.logging import configure_logging
from ytmaker_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

ServiceMain = Callable[[asyncio.Event], Awaitable[None]]


def run_service(
    service: str, settings: ServiceSettings, main: ServiceMain, ready: Readiness
) -> None:
    """Run `main(stopping)` until it returns. SIGTERM or SIGINT set `stopping`: `main` must
    then finish or hand back the work in hand, commit and return. `main` starts once the
    broker answers (waiting up to `settings.broker_startup_wait_s`)."""
    configure_logging(service, settings.log_level)
    run_loop(settings, _run(service, settings, main, ready))


def run_loop(settings: ServiceSettings, main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop when configured (or `auto` and installed), else asyncio's loop."""
    if settings.event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if settings.event_loop == "uvloop":
                raise
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


async def _run(
    service: str, settings: ServiceSettings, main: ServiceMain, ready: Readiness
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    health = HealthServer(service, ready, settings.health_host, settings.health_port)
    await health.start()
    log.info(
        "started",
        extra={"health": f"http://{health.host}:{health.port}", "instance": settings.instance},
    )
    try:
        # A process started while the broker is down waits for it, not ready.
        if await wait_for_broker(settings, stopping):
            async with gcpolicy.scheduled(settings):
                await main(stopping)
    finally:
        await health.stop()
        log.info("stopped")
