"""Stability AI v2beta stable-image (REST, multipart), as its API reference documents it:
`POST /v2beta/stable-image/generate/{core|ultra|sd3}` with `authorization: Bearer <key>`,
`accept: image/*`, form fields `prompt`, `aspect_ratio`, `output_format`; the answer is the
image bytes (`finish-reason` header), errors are JSON `{"id", "name", "errors": [...]}`.
The image is fitted to 1280×720 for the video."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from ytmaker_assets.adapters.http import response_error, transport_error
from ytmaker_assets.domain import HEIGHT, WIDTH
from ytmaker_shared.script import Script, Segment
from ytmaker_shared.stageworker import PermanentError

SERVICE = "stability"


def fit(data: bytes) -> bytes:
    """Scale and centre-crop an image to 1280×720 PNG; raises PermanentError if unreadable."""
    try:
        image = Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as exc:
        raise PermanentError(f"{SERVICE}_bad_image", f"not an image: {exc!r}") from exc
    scale = max(WIDTH / image.width, HEIGHT / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    left, top = (image.width - WIDTH) // 2, (image.height - HEIGHT) // 2
    out = io.BytesIO()
    image.crop((left, top, left + WIDTH, top + HEIGHT)).save(out, "PNG")
    return out.getvalue()


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body.get('name', 'error')}: {'; '.join(map(str, body.get('errors', [])))}"
    except ValueError:
        return response.text[:500] or response.reason_phrase


class StabilityImages:
    def __init__(
        self, api_key: str, *, base_url: str, endpoint: str = "core", timeout_s: float = 60.0
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/v2beta/stable-image/generate/{endpoint}"
        self.client = httpx.AsyncClient(
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
        return fit(response.content), "image/png", "png"

    async def aclose(self) -> None:
        await self.client.aclose()
