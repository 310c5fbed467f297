"""A Gemini API emulator: `POST /v1beta/models/{model}:generateContent` as Google documents it.

- Auth: the `x-goog-api-key` header (or `?key=`); a wrong key → 400 `API_KEY_INVALID`, none →
  403 `PERMISSION_DENIED`, in Google's error body `{"error": {"code", "message", "status"}}`.
- Request: `contents[].parts[].text`, `generationConfig.responseMimeType` and
  `responseSchema` (JSON mode). Response: `candidates[].content.parts[].text`, `finishReason`,
  `usageMetadata`, `modelVersion`.
- The "model" answers a JSON script that follows the asked schema: as many segments as the
  prompt asks for ("exactly N segments"), built from the prompt's content. Replace
  `emulator.respond` to answer something else.
- Fault kind `generate`: `Fail(429/503/...)` (with `retry_after`: a `google.rpc.RetryInfo`
  `retryDelay` in the error's details, as Google's APIs answer a 429), `Hang(s)`, `Truncate()`
  (the model's JSON text cut in half with `finishReason: MAX_TOKENS`), `Flood(n)` and
  `Drip(every_s)` (a JSON answer whose model text never ends: `n` bytes at once, or a byte
  at a time; what went out is in `streamed`).

Run alone: `python -m tests.emulators.gemini --port 8091`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.emulators.base import (
    Drip,
    EmulatorServer,
    Fail,
    Faults,
    Flood,
    Hang,
    Streamed,
    Truncate,
    streamed_body,
    truncate,
)

_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def google_error(
    code: int, message: str, reason: str | None = None, retry_after: int | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}
    }
    details: list[dict[str, Any]] = []
    if reason:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason})
    if retry_after is not None:  # how Google's APIs say when to retry a 429
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}
        )
    if details:
        body["error"]["details"] = details
    return JSONResponse(body, status_code=code)


def scripted_answer(prompt: str, schema: dict[str, Any] | None) -> str:
    """A plausible script for the prompt, as the JSON text a model in JSON mode returns."""
    match = re.search(r"exactly (\d+) segments", prompt)
    count = int(match.group(1)) if match else 3
    content = prompt.split("\n\n", 1)[-1]
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", content) if s.strip()] or [
        "An emulated narration."
    ]
    segments = []
    for i in range(count):
        text = sentences[i % len(sentences)]
        segments.append(
            {
                "index": i + 1,
                "narration": text,
                "caption": text[:60],
                "image_prompt": f"an illustration of: {text[:80]}",
                "duration_seconds": 8.0,
            }
        )
    title = re.search(r"titled '([^']+)'", prompt)
    return json.dumps(
        {
            "title": title.group(1) if title else "Emulated title",
            "description": " ".join(sentences[:2]),
            "tags": ["emulated", "gemini"],
            "segments": segments,
        }
    )


class GeminiEmulator:
    def __init__(self, api_key: str = "test-gemini-key") -> None:
        self.api_key = api_key
        self.faults = Faults()
        self.calls: list[dict[str, Any]] = []
        self.streamed: list[Streamed] = []
        self.respond: Callable[[str, dict[str, Any] | None], str] = scripted_answer
        self.app = FastAPI()
        self.app.post("/v1beta/models/{model_action}")(self._generate)
        self.app.post("/v1/models/{model_action}")(self._generate)

    async def _generate(self, model_action: str, request: Request) -> Response:
        model, _, action = model_action.partition(":")
        if action != "generateContent":
            return google_error(404, f"unknown method {action!r}")
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            return google_error(403, "Method doesn't allow unregistered callers.")
        if key != self.api_key:
            return google_error(
                400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"
            )
        try:
            body = json.loads(await request.body())
            prompt = "".join(p.get("text", "") for c in body["contents"] for p in c["parts"])
        except (ValueError, KeyError, TypeError) as exc:
            return google_error(400, f"Invalid JSON payload received. {exc}")
        config = body.get("generationConfig") or {}
        self.calls.append({"model": model, "prompt": prompt, "config": config})
        fault = self.faults.take("generate")
        if isinstance(fault, Fail):
            return google_error(
                fault.status, f"emulated failure {fault.status}", retry_after=fault.retry_after
            )
        if isinstance(fault, Hang):
            await asyncio.sleep(fault.seconds)
        if isinstance(fault, Flood | Drip):
            self.streamed.append(record := Streamed())
            head = b'{"candidates": [{"content": {"parts": [{"text": "'
            return StreamingResponse(
                streamed_body(fault, record, head, request),
                status_code=fault.status,
                media_type="application/json",
            )
        text = self.respond(prompt, config.get("responseSchema"))
        finish = "STOP"
        if isinstance(fault, Truncate):
            text = truncate(text.encode(), fault).decode(errors="ignore")
            finish = "MAX_TOKENS"
        return JSONResponse(
            {
                "candidates": [
                    {
                        "content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": finish,
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": len(prompt) // 4,
                    "candidatesTokenCount": len(text) // 4,
                    "totalTokenCount": (len(prompt) + len(text)) // 4,
                },
                "modelVersion": model,
            }
        )

    def server(self) -> EmulatorServer:
        return EmulatorServer(self.app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--api-key", default="test-gemini-key")
    args = parser.parse_args()
    emulator = GeminiEmulator(args.api_key)

    async def serve() -> None:
        server = EmulatorServer(emulator.app, args.port)
        await server.start()
        print(server.url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
