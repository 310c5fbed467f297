"""Stability AI v2beta stable-image (REST, multipart), as its API reference documents it:
`POST /v2beta/stable-image/generate/{core|ultra|sd3}` with `authorization: Bearer <key>`,
`accept: image/*`, form fields `prompt`, `aspect_ratio`, `output_format`; the answer is the
image bytes (`finish-reason` header), errors are JSON `{"id", "name", "errors": [...]}`.
The image is fitted to 1280×720 for the video."""

from __future__ import annotations

import asyncio
import io

import httpx
from PIL import Image, ImageOps

from ytmaker_assets.adapters.http import json_object, response_error, text_of
from ytmaker_assets.domain import HEIGHT, WIDTH
from ytmaker_shared.http import bounded_client, transport_error
from ytmaker_shared.script import Script, Segment
from ytmaker_shared.stageworker import PermanentError

SERVICE = "stability"
#: The most pixels an answer may decode to (Stability makes at most about 4 megapixels).
MAX_PIXELS = 16_000_000


def fit(data: bytes) -> bytes:
    """Centre-crop an image to 16:9 and scale it to 1280×720 PNG (the crop first, so memory
    stays bounded by the larger of the two images whatever its shape); raises PermanentError
    if it is unreadable or larger than `MAX_PIXELS`. Blocking (CPU): call it in a thread."""
    try:
        opened = Image.open(io.BytesIO(data))
        if opened.width * opened.height > MAX_PIXELS:
            raise ValueError(f"{opened.width}×{opened.height} is more than {MAX_PIXELS} pixels")
        image = opened.convert("RGB")
    except Exception as exc:
        raise PermanentError(f"{SERVICE}_bad_image", f"not a usable image: {exc!r}"[:500]) from exc
    out = io.BytesIO()
    ImageOps.fit(image, (WIDTH, HEIGHT)).save(out, "PNG")
    return out.getvalue()


def _error_message(response: httpx.Response) -> str:
    body = json_object(response)
    if body is None:
        return response.text[:500] or response.reason_phrase
    errors = body.get("errors")
    listed = "; ".join(map(text_of, errors)) if isinstance(errors, list) else text_of(errors)
    return f"{text_of(body.get('name', 'error'))}: {listed}"


class StabilityImages:
    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        endpoint: str = "core",
        timeout_s: float = 60.0,
        max_answer_bytes: int = 64 * 2**20,  # a PNG of the 16 megapixels `fit` takes at most
        answer_within_s: float = 300.0,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/v2beta/stable-image/generate/{endpoint}"
        self.client = bounded_client(
            max_answer_bytes,
            answer_within_s,
            headers={"authorization": f"Bearer {api_key}", "accept": "image/*"},
            timeout=timeout_s,
        )

    async def make(
        self, script: Script, segment: Segment, project_id: str
    ) -> tuple[bytes, str, str]:
        fields = {
            "prompt": segment.image_prompt,
            "aspect_ratio": "16:9",
            "output_format": "png",
            "negative_prompt": "text, watermark, blurry",
        }
        try:
            response = await self.client.post(
                self.url, files={k: (None, v) for k, v in fields.items()}
            )
        except httpx.TransportError as exc:
            raise transport_error(SERVICE, exc) from exc
        if response.status_code != 200:
            raise response_error(SERVICE, response, _error_message(response))
        if response.headers.get("finish-reason", "SUCCESS") == "CONTENT_FILTERED":
            raise PermanentError(
                f"{SERVICE}_content_filtered",
                f"segment {segment.index}: the image prompt was filtered by Stability",
            )
        return await asyncio.to_thread(fit, response.content), "image/png", "png"

    async def aclose(self) -> None:
        await self.client.aclose()
