"""Waiting for asynchronous outcomes with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], object], *, timeout: float, interval: float = 0.05, what: str = ""
) -> None:
    """Poll `condition()` until it is truthy; raise AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(interval)


async def wait_until_async(
    condition: Callable[[], Awaitable[object]],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str = "",
) -> None:
    """`wait_until` for a condition that must await (e.g. reads a topic)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(interval)


def poll(
    condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.25
) -> None:
    """`wait_until` for synchronous code: poll `condition()` until it is truthy; raise
    AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
