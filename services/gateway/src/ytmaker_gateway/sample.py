"""`python -m ytmaker_gateway.sample`: submit a sample project to a running gateway, print the
live page's URL, and show the run's progress in the terminal until it ends (for `make run`).

Uses `YTMAKER_GATEWAY_URL` (default http://127.0.0.1:$YTMAKER_PORT) and a token minted with
YTMAKER_JWT_SECRET (or none, when the gateway allows anonymous development access).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

from ytmaker_gateway.auth import AuthError, mint_token
from ytmaker_gateway.settings import GatewaySettings

SAMPLE = {
    "title": "How tides work",
    "content": (
        "The Moon's gravity pulls on the oceans, raising a bulge of water on the side facing it "
        "and another on the far side. As the Earth turns, each coast passes through both "
        "bulges, so most places see two high tides a day. When the Sun and Moon line up, their "
        "pulls add up and the tides are strongest."
    ),
    "settings": {"language": "en", "segments": 3, "target_length_seconds": 20},
}


def _line(payload: dict[str, Any]) -> str:
    stage = f"[{payload.get('stage')}]" if payload.get("stage") else ""
    return (
        f"{float(payload.get('progress') or 0):6.1f} %  {payload.get('status'):9} "
        f"{payload.get('event_type')} {stage} {payload.get('message') or ''}"
    )


async def watch(base: str, token: str | None, wait_s: float = 60.0) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                print(f"the gateway at {base} is not ready", file=sys.stderr)
                return 1
            await asyncio.sleep(0.5)
        response = await http.post("/api/v1/projects", json=SAMPLE)
        if response.status_code != 201:
            print(f"cannot start the sample: {response.text}", file=sys.stderr)
            return 1
        started = response.json()
    print(f"sample project started; live page: {started['page_url']}")
    ws_url = started["ws_url"] + (f"?token={token}" if token else "")
    last = -1
    while True:
        try:
            async with connect(ws_url) as ws:
                sub = {"action": "subscribe", "task_id": started["task_id"], "since": last}
                await ws.send(json.dumps(sub))
                async for frame in ws:
                    message = json.loads(frame)
                    if message["type"] == "ping":
                        await ws.send('{"action": "pong"}')
                    if message["type"] == "error" and message["offset"] is None and last < 0:
                        # A brand-new task may not be known yet (the fold has not seen its
                        # first event): ask again shortly.
                        await asyncio.sleep(1.0)
                        await ws.send(json.dumps(sub))
                        continue
                    if message["type"] not in ("progress", "status", "error"):
                        continue
                    if message["offset"] is None or message["offset"] <= last:
                        continue
                    last = message["offset"]
                    print(_line(message["payload"]), flush=True)
                    if message["payload"]["status"] in ("completed", "failed", "cancelled"):
                        print(f"done: {message['payload']['status']}; see {started['page_url']}")
                        return 0
        except Exception as exc:  # the gateway restarted: resume by offset
            print(f"connection lost ({type(exc).__name__}); resuming after offset {last}")
            await asyncio.sleep(2)


def main() -> int:
    settings = GatewaySettings()
    base = os.environ.get("YTMAKER_GATEWAY_URL", f"http://127.0.0.1:{settings.port}")
    try:
        token: str | None = mint_token(settings.token_config(), "sample")
    except AuthError:
        token = None
    return asyncio.run(watch(base, token))


if __name__ == "__main__":
    raise SystemExit(main())
