"""A Stability AI v2beta stable-image emulator, as its API reference documents it.

- `POST /v2beta/stable-image/generate/{core|ultra|sd3}`, multipart form (`prompt` required,
  `aspect_ratio`, `output_format` png|jpeg|webp, `negative_prompt`, `seed`);
  `authorization: Bearer <key>`; `accept: image/*` → the image bytes with `finish-reason` and
  `seed` headers, `accept: application/json` → `{"image": base64, "finish_reason", "seed"}`.
- Errors: JSON `{"id", "name", "errors": [...]}`: 400 `bad_request`, 401 `unauthorized`,
  403 `content_moderation`, 429 `rate_limit_exceeded`, 500 `internal_error`.
- Fault kind `generate`: `Fail(status)`, `Hang(s)`, `Truncate()` (half the image bytes).
"""

from __future__ import annotations

import asyncio
import base64
import io
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image, ImageDraw

from tests.emulators.base import EmulatorServer, Fail, Faults, Hang, Truncate, truncate

_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "content_moderation",
    413: "payload_too_large",
    429: "rate_limit_exceeded",
    500: "internal_error",
    503: "service_unavailable",
}
_SIZES = {"16:9": (1344, 768), "1:1": (1024, 1024), "9:16": (768, 1344)}


def stability_error(status: int, *errors: str) -> JSONResponse:
    return JSONResponse(
        {"id": uuid.uuid4().hex, "name": _NAMES.get(status, "error"), "errors": list(errors)},
        status_code=status,
    )


class StabilityEmulator:
    def __init__(self, api_key: str = "test-stability-key") -> None:
        self.api_key = api_key
        self.faults = Faults()
        self.prompts: list[str] = []
        self.app = FastAPI()
        self.app.post("/v2beta/stable-image/generate/{model}")(self._generate)

    async def _generate(self, model: str, request: Request) -> Response:
        if model not in ("core", "ultra", "sd3"):
            return stability_error(404, f"unknown endpoint {model}")
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return stability_error(401, "authorization: invalid or missing API key")
        if "multipart/form-data" not in request.headers.get("content-type", ""):
            return stability_error(400, "content-type: must be multipart/form-data")
        form = await request.form()
        prompt = str(form.get("prompt") or "")
        if not prompt:
            return stability_error(400, "prompt: cannot be empty")
        fmt = str(form.get("output_format") or "png")
        size = _SIZES.get(str(form.get("aspect_ratio") or "1:1"))
        if fmt not in ("png", "jpeg", "webp") or size is None:
            return stability_error(400, "output_format or aspect_ratio: invalid value")
        self.prompts.append(prompt)
        fault = self.faults.take("generate")
        if isinstance(fault, Fail):
            response = stability_error(fault.status, f"emulated failure {fault.status}")
            if fault.retry_after:
                response.headers["retry-after"] = str(fault.retry_after)
            return response
        if isinstance(fault, Hang):
            await asyncio.sleep(fault.seconds)
        image = Image.new("RGB", size, (40, 90, 160))
        ImageDraw.Draw(image).text((40, 40), prompt[:80], fill=(255, 255, 255))
        buf = io.BytesIO()
        image.save(buf, "JPEG" if fmt == "jpeg" else fmt.upper())
        data = buf.getvalue()
        if isinstance(fault, Truncate):
            data = truncate(data, fault)
        headers = {"finish-reason": "SUCCESS", "seed": "42"}
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(
                {"image": base64.b64encode(data).decode(), "finish_reason": "SUCCESS", "seed": 42}
            )
        return Response(data, media_type=f"image/{fmt}", headers=headers)

    def server(self) -> EmulatorServer:
        return EmulatorServer(self.app)
