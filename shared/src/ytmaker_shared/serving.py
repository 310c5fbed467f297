"""uvicorn's server without its tenth-of-a-second tick: the HTTP servers of every service.

`uvicorn.Server.main_loop` wakes ten times a second to look at `should_exit` and refresh the
`Date` header, in every process, busy or not: with a health server in every service and the
API servers beside them, those ticks were the largest share of the idle stack's wake-ups
(docs/decisions/0048-quiet-http-servers.md). This server refreshes the header once a second
and notices `should_exit` as soon as it is set from the event loop (our own shutdown), or
within that second when uvicorn's signal handler sets it. `server_config` is the configuration
they share, uvicorn's log lines JSON like the rest, idle connections kept longer than their
clients keep them, and the connections its shutdown grace cuts short a warning, not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import uvicorn

#: How often the `Date` header is refreshed (uvicorn's own interval for it).
TICK_S = 1.0
#: How long an idle keep-alive connection is kept open (uvicorn's default: 5 s). Longer than
#: any client of ours keeps one for reuse (httpx and the gateway's read-model client 5 s,
#: Node's fetch 4 s, ingress-nginx's upstream pool 60 s): a server that closes first races the
#: client's next request on it, which then fails as "Server disconnected" (a read-model lookup
#: of a subscribe, a POST through the ingress) although nothing is wrong (decision 0128).
KEEP_ALIVE_S = 75.0
#: What uvicorn logs, at ERROR, when its shutdown grace ran out with connections still open.
_GRACE_EXCEEDED = "Cancel %s running task(s), timeout graceful shutdown exceeded"


class _GraceExceededIsAWarning(logging.Filter):
    """A gateway stopped for a rolling update closes every WebSocket (1012) and waits its
    grace for them; a client that stopped reading can outlast it, and is then cut off. That
    client reconnects and resumes by offset, nothing is lost: a warning, like the 1013 a slow
    client gets, not the error uvicorn calls it (an ERROR line per rollout would page)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.msg == _GRACE_EXCEEDED:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        if not all(hasattr(uvicorn.Server, name) for name in ("main_loop", "on_tick")):
            raise RuntimeError("uvicorn.Server no longer has main_loop/on_tick: see 0048")
        self._exit = asyncio.Event()
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit.set()
        else:
            self._exit.clear()

    async def main_loop(self) -> None:
        while not await self.on_tick(0):  # counter 0: the header is refreshed every tick
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_S):
                    await self._exit.wait()


def server_config(app: Any, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for our servers: warnings and up, no access log, no lifespan,
    idle connections kept `KEEP_ALIVE_S`, and its records left to `configure_logging` (JSON
    lines, like every other record) instead of uvicorn's own text handlers (`log_config=None`)."""
    errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _GraceExceededIsAWarning) for f in errors.filters):
        errors.addFilter(_GraceExceededIsAWarning())
    defaults: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "timeout_keep_alive": KEEP_ALIVE_S,
    }
    return uvicorn.Config(app, log_config=None, **(defaults | options))
