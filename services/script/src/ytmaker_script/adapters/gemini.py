"""Gemini through google-genai, with structured JSON output.

The SDK's own retries are off: the stage worker retries, so every attempt is visible as
`stage.retrying`. Errors are classified for it: 429/5xx/timeouts/invalid or truncated JSON
are transient, other 4xx permanent.
"""

from __future__ import annotations

import json

import httpx
from google import genai
from google.genai import errors, types
from pydantic import ValidationError

from ytmaker_script.domain import prompt_for, response_schema
from ytmaker_shared.events import TaskRequestedPayload
from ytmaker_shared.script import Script
from ytmaker_shared.stageworker import TransientError, error_for_status


class GeminiWriter:
    """Writes a `Script` with `model`; `base_url` points the SDK elsewhere (an emulator)."""

    def __init__(
        self, api_key: str, model: str, *, base_url: str | None = None, timeout_s: float = 120.0
    ) -> None:
        self.model = model
        self.client = genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=base_url,
                api_version="v1beta",
                timeout=int(timeout_s * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    async def write(self, request: TaskRequestedPayload) -> Script:
        config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=response_schema(),
            temperature=0.7,
        )
        try:
            response = await self.client.aio.models.generate_content(
                model=self.model, contents=prompt_for(request), config=config
            )
        except errors.APIError as exc:
            raise error_for_status(
                exc.code or 500, f"Gemini answered {exc.code}: {exc.message}", service="gemini"
            ) from exc
        except Exception as exc:
            kind = _transport_failure(exc)
            if kind is None:
                raise
            raise TransientError(f"gemini_{kind}", f"Gemini call failed: {exc!r}") from exc
        return script_from_answer(response.text, finish=_finish_reason(response))


def _transport_failure(exc: BaseException) -> str | None:
    """`timeout` or `unavailable` for a transport error of httpx or of the httpx fork the SDK
    may use (matched by class name, since both define the same hierarchy), else None."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "TimeoutException" in names or isinstance(exc, TimeoutError):
        return "timeout"
    if "TransportError" in names or isinstance(exc, (httpx.TransportError, ConnectionError)):
        return "unavailable"
    return None


def _finish_reason(response: types.GenerateContentResponse) -> str | None:
    if response.candidates and response.candidates[0].finish_reason is not None:
        return str(response.candidates[0].finish_reason.value)
    return None


def script_from_answer(text: str | None, *, finish: str | None = None) -> Script:
    """The model's JSON text as a validated Script. Truncated or invalid JSON is transient
    (the model may do better next time); the stage gives up after its attempts."""
    if not text:
        raise TransientError("invalid_model_output", f"Gemini returned no text (finish {finish})")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TransientError(
            "invalid_model_output",
            f"Gemini returned invalid or truncated JSON (finish {finish}): {exc}",
        ) from exc
    if not isinstance(raw, dict):
        raise TransientError("invalid_model_output", "Gemini's JSON is not an object")
    raw.setdefault("segments", [])
    for i, segment in enumerate(raw["segments"], start=1):
        if isinstance(segment, dict):
            segment.setdefault("index", i)
    try:
        return Script.model_validate(raw)
    except ValidationError as exc:
        raise TransientError(
            "invalid_model_output", f"Gemini's script does not validate: {exc.errors()[:3]}"
        ) from exc
