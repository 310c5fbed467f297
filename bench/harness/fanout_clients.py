"""Some of the fan-out's clients, in a process of their own, so that the figure measures the
gateway rather than one client process (`ytmaker_extras.fanout` starts several).

    python -m bench.harness.fanout_clients    (driven by `fanout`, JSON lines)

On stdin, one line `{"url", "clients": [[n, task_id, last_offset], ...]}`: it opens one
connection per client and answers `{"ready": true}`; then a line `go`: each client subscribes
to its task from the start (`since: -1`) and reads until it has the update at `last_offset`.
The answer: `{"counts": {n: updates}, "complete": [n...], "refused": {n: "code: message"},
"closes": {n: close code}}`. It exits at the next line (or the end of stdin).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.harness.producer import answer  # one JSON line on stdout, as the producer's
from bench.harness.wire import CONNECT


async def read(ws: ClientConnection, task_id: str, last: int, out: dict[str, Any], n: int) -> None:
    """Subscribe from the start and count updates until the one at `last`."""
    subscribe = {"action": "subscribe", "task_id": task_id, "since": -1}
    await ws.send(orjson.dumps(subscribe).decode())  # a text frame: binary ones are refused
    count = 0
    try:
        with contextlib.suppress(ConnectionClosed):  # counted as incomplete, with its code
            async for frame in ws:
                message = orjson.loads(frame)
                if message["type"] == "error" and message["offset"] is None:
                    payload = message["payload"]  # not subscribed
                    out["refused"][n] = f"{payload.get('code')}: {payload.get('message')}"
                    return
                if message["type"] in ("progress", "status", "error"):
                    count += 1
                    if message["offset"] >= last:
                        out["complete"].append(n)
                        return
        out["closes"][n] = ws.close_code
    finally:
        out["counts"][n] = count


async def serve() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    config = json.loads(await stdin.readline())
    clients = config["clients"]
    headers = config["headers"]
    sockets = [
        await connect(config["url"], additional_headers=headers, **CONNECT)  # type: ignore[arg-type]
        for _ in clients
    ]
    for ws in sockets:
        await ws.recv()  # connected
    answer({"ready": True})
    await stdin.readline()  # go
    out: dict[str, Any] = {"counts": {}, "complete": [], "refused": {}, "closes": {}}
    await asyncio.gather(
        *(
            read(ws, task_id, last, out, n)
            for ws, (n, task_id, last) in zip(sockets, clients, strict=True)
        )
    )
    await asyncio.gather(*(ws.close() for ws in sockets))
    answer(out)
    await stdin.readline()  # quit: only once the caller has read this process's CPU time


def main() -> None:
    import uvloop

    uvloop.run(serve())


if __name__ == "__main__":
    main()
