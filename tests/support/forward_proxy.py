"""A forward HTTP proxy on 127.0.0.1: what a site's egress proxy does for the services' calls.

`async with ForwardProxy() as proxy:` listens on `proxy.url`. It forwards a request in absolute
form (`POST http://127.0.0.1:8123/v1/x HTTP/1.1`, what a client sends a proxy for an `http://`
address) and tunnels `CONNECT host:port` (for an `https://` address: the TLS inside is the
client's and the server's). `seen` keeps the method and target of every request it was sent,
in order (`"POST http://127.0.0.1:8123/v1/x"`, `"CONNECT 127.0.0.1:8443"`), and
`authorizations` the `Proxy-Authorization` header of each (None without).

`clear_proxy_settings(monkeypatch)` takes the machine's own proxy settings out of a test's
environment, for the test to name its proxy.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

#: Hop-by-hop headers a proxy does not pass on; it asks the server to close instead.
_HOP_BY_HOP = ("connection:", "proxy-connection:", "keep-alive:", "proxy-authorization:")


#: What httpx reads for proxies, in either case.
PROXY_SETTINGS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def clear_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_SETTINGS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


class ForwardProxy:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.authorizations: list[str | None] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(client_in, client_out)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass  # a client or server that hung up, or bytes that are no request: drop it
        finally:
            self._handlers.discard(task)
            client_out.close()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        head = (await client_in.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")[:-2]
        method, target, version = request_line.split(" ")
        self.seen.append(f"{method} {target}")
        self.authorizations.append(
            next(
                (
                    line.split(":", 1)[1].strip()
                    for line in lines
                    if _is(line, "proxy-authorization:")
                ),
                None,
            )
        )
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            server_in, server_out = await asyncio.open_connection(host, int(port))
            client_out.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            address = urlsplit(target)
            server_in, server_out = await asyncio.open_connection(
                address.hostname, address.port or 80
            )
            path = address.path + (f"?{address.query}" if address.query else "")
            kept = [line for line in lines if not _is(line, *_HOP_BY_HOP)]
            server_out.write(
                "\r\n".join(
                    [f"{method} {path} {version}", *kept, "connection: close", "", ""]
                ).encode("latin-1")
            )
        try:
            await _relay(client_in, server_out, server_in, client_out)
        finally:
            server_out.close()


def _is(line: str, *names: str) -> bool:
    return line.lower().startswith(names)


async def _relay(
    client_in: asyncio.StreamReader,
    server_out: asyncio.StreamWriter,
    server_in: asyncio.StreamReader,
    client_out: asyncio.StreamWriter,
) -> None:
    """Bytes both ways until either side ends: the server closes after its answer; a client
    that hangs up leaves nothing for the server to wait for (the caller closes both)."""
    both = [
        asyncio.create_task(_copy(client_in, server_out)),
        asyncio.create_task(_copy(server_in, client_out)),
    ]
    try:
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for copy in both:
            copy.cancel()
        await asyncio.gather(*both, return_exceptions=True)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()
