"""Gemini through google-genai, with structured JSON output.

The SDK's own retries are off: the stage worker retries, so every attempt is visible as
`stage.retrying`. Errors are classified for it: 429/5xx/timeouts/invalid or truncated JSON
(the model's, or a 200 whose body is not a response at all: `gemini_bad_answer`) are
transient (a 429 waits at least its Retry-After or `google.rpc.RetryInfo` delay), other 4xx
permanent. Redirects are not followed: the SDK would send the key (`x-goog-api-key`, which
httpx does not strip) to whatever host a redirect names.

The SDK reads an answer whole. It is given its httpx client, whose transport bounds every
answer (`ytmaker_shared.http.BoundedTransport`): at most `max_answer_bytes` (a script's JSON
is some KiB), all of it within `answer_within_s` (the timeout unless told otherwise) of the
request having been sent. Left to itself the SDK would build its own client, and prefer aiohttp
when installed (it is): neither bounds an answer's size. Past a bound the call is a retryable
`gemini_answer_too_large` or `gemini_timeout`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from google import genai
from google.genai import errors, types
from pydantic import ValidationError

from ytmaker_script.domain import prompt_for, response_schema
from ytmaker_shared.events import TaskRequestedPayload
from ytmaker_shared.http import bounded_client, transport_error
from ytmaker_shared.script import Script
from ytmaker_shared.stageworker import TransientError, error_for_status, parse_retry_after

#: The most of an answer taken from Gemini: a script's JSON and its metadata are some KiB.
MAX_ANSWER_BYTES = 8 * 2**20


class GeminiWriter:
    """Writes a `Script` with `model`; `base_url` points the SDK elsewhere (an emulator).
    `max_answer_bytes` and `answer_within_s` (default: `timeout_s`) bound every answer."""

    def __init__(
        self,
        api_key: str,
        model: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        answer_within_s: float | None = None,
    ) -> None:
        self.model = model
        within_s = timeout_s if answer_within_s is None else answer_within_s
        # Given a client, the SDK sends every async call through it (never through aiohttp).
        self.http = bounded_client(
            max_answer_bytes,
            within_s,
            timeout=timeout_s,
            follow_redirects=False,
        )
        self.client = genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=base_url,
                api_version="v1beta",
                timeout=int(timeout_s * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
                httpx_async_client=self.http,
            ),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

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
                exc.code or 500,
                f"Gemini answered {exc.code}: {exc.message}"[:1000],
                service="gemini",
                retry_after_s=_retry_after(exc),
            ) from exc
        except httpx.TransportError as exc:  # AnswerTooLarge and timeouts of the bounds too
            raise transport_error("gemini", exc) from exc
        except ValueError as exc:  # not JSON, or not a response's shape (pydantic's error)
            raise TransientError(
                "gemini_bad_answer", f"Gemini's answer is not a response: {type(exc).__name__}"
            ) from exc
        except Exception as exc:
            kind = _transport_failure(exc)
            if kind is None:
                raise
            raise TransientError(f"gemini_{kind}", f"Gemini call failed: {exc!r}") from exc
        return script_from_answer(response.text, finish=_finish_reason(response))


_SECONDS = re.compile(r"^(\d{1,6}(?:\.\d{1,9})?)s$")


def _retry_after(exc: errors.APIError) -> float | None:
    """The least wait a refusal asks for: the Retry-After header, else the `retryDelay`
    ("27s") of a `google.rpc.RetryInfo` in the error's details."""
    headers = getattr(exc.response, "headers", None)
    header = parse_retry_after(headers.get("retry-after")) if headers is not None else None
    if header is not None:
        return header
    body: Any = exc.details
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and (match := _SECONDS.match(delay)):
            return parse_retry_after(match.group(1))
    return None


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
    (the model may do better next time); the stage gives up after its attempts. The error
    never repeats the model's text (it may be megabytes; an event carries 4,000 characters)."""
    if not text:
        raise TransientError("invalid_model_output", f"Gemini returned no text (finish {finish})")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:  # also digits beyond Python's limit, deep nesting
        raise TransientError(
            "invalid_model_output",
            f"Gemini returned invalid or truncated JSON (finish {finish}): {exc}"[:1000],
        ) from exc
    if not isinstance(raw, dict):
        raise TransientError("invalid_model_output", "Gemini's JSON is not an object")
    segments = raw.setdefault("segments", [])
    if isinstance(segments, list):
        for i, segment in enumerate(segments, start=1):
            if isinstance(segment, dict):
                segment.setdefault("index", i)
    try:
        return Script.model_validate(raw)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_context=False, include_input=False)
        raise TransientError(
            "invalid_model_output", f"Gemini's script does not validate: {problems[:3]}"[:1000]
        ) from exc
