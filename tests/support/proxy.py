"""A TCP proxy on localhost between a client and a server, for tests of what a client does
when the network fails: `cut()` drops every open connection (as a dead link or a restarted
load balancer would), `freeze()` stops forwarding on them without closing (a half-dead link:
only a heartbeat notices). New connections are forwarded as usual.

It runs its own event loop in a thread, so that sync tests (a subprocess in a pseudo-terminal)
and async tests can both use it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field


@dataclass
class _Link:
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    frozen: asyncio.Event = field(default_factory=asyncio.Event)


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self.cuts = 0
        self._links: list[_Link] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        link = _Link([writer, up_writer])
        self._links.append(link)
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link)),
            asyncio.create_task(self._pump(up_reader, writer, link)),
        ]

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link
    ) -> None:
        try:
            while data := await source.read(65536):
                if link.frozen.is_set():
                    await asyncio.Event().wait()  # swallow, and never forward again
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if not link.frozen.is_set():
                with contextlib.suppress(Exception):
                    sink.close()

    def cut(self) -> int:
        """Drop every open connection at once (TCP reset); returns how many."""
        return int(asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(10))

    async def _cut(self) -> int:
        links, self._links = self._links, []
        for link in links:
            for writer in link.writers:
                writer.transport.abort()
            for task in link.tasks:
                task.cancel()
        self.cuts += 1
        return len(links)

    def freeze(self) -> int:
        """Stop forwarding on every open connection, leaving them open; returns how many."""

        async def go() -> int:
            for link in self._links:
                link.frozen.set()
            return len(self._links)

        return int(asyncio.run_coroutine_threadsafe(go(), self._loop).result(10))

    def stop(self) -> None:
        async def go() -> None:
            await self._cut()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
