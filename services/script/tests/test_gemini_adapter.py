"""The Gemini adapter (google-genai) against the local Gemini emulator, failures included."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.emulators.base import EmulatorServer, Fail, Hang, Truncate
from tests.emulators.gemini import GeminiEmulator
from ytmaker_script.adapters.gemini import GeminiWriter, script_from_answer
from ytmaker_shared.events import ProjectSettings, TaskRequestedPayload
from ytmaker_shared.stageworker import PermanentError, TransientError

REQUEST = TaskRequestedPayload(
    title="Event logs",
    content="Logs keep events in order. Consumers read them at their own pace. Offsets mark "
    "progress.",
    settings=ProjectSettings(segments=3),
)


@pytest.fixture
async def gemini() -> AsyncIterator[tuple[GeminiEmulator, EmulatorServer]]:
    emulator = GeminiEmulator()
    async with emulator.server() as server:
        yield emulator, server


def writer(
    server: EmulatorServer, key: str = "test-gemini-key", timeout: float = 10
) -> GeminiWriter:
    return GeminiWriter(key, "gemini-2.5-flash", base_url=server.url, timeout_s=timeout)


async def test_structured_output_is_asked_and_parsed(
    gemini: tuple[GeminiEmulator, EmulatorServer],
) -> None:
    emulator, server = gemini
    script = await writer(server).write(REQUEST)
    assert len(script.segments) == 3 and script.title == "Event logs"
    call = emulator.calls[-1]
    assert call["model"] == "gemini-2.5-flash"
    assert call["config"]["responseMimeType"] == "application/json"
    assert "segments" in call["config"]["responseSchema"]["properties"]
    assert "Logs keep events in order." in call["prompt"]


@pytest.mark.parametrize(
    ("status", "code"), [(429, "gemini_rate_limited"), (503, "gemini_unavailable")]
)
async def test_rate_limits_and_5xx_are_transient(
    gemini: tuple[GeminiEmulator, EmulatorServer], status: int, code: str
) -> None:
    emulator, server = gemini
    emulator.faults.inject("generate", Fail(status))
    with pytest.raises(TransientError) as caught:
        await writer(server).write(REQUEST)
    assert caught.value.code == code
    assert len((await writer(server).write(REQUEST)).segments) == 3  # the next call works


async def test_bad_key_is_permanent(gemini: tuple[GeminiEmulator, EmulatorServer]) -> None:
    _, server = gemini
    with pytest.raises(PermanentError) as caught:
        await writer(server, key="wrong").write(REQUEST)
    assert caught.value.code == "gemini_rejected" and "API key not valid" in caught.value.message


async def test_truncated_json_is_transient_with_a_clear_message(
    gemini: tuple[GeminiEmulator, EmulatorServer],
) -> None:
    emulator, server = gemini
    emulator.faults.inject("generate", Truncate())
    with pytest.raises(TransientError) as caught:
        await writer(server).write(REQUEST)
    assert caught.value.code == "invalid_model_output"
    assert "truncated" in caught.value.message and "MAX_TOKENS" in caught.value.message


async def test_timeout_is_transient(gemini: tuple[GeminiEmulator, EmulatorServer]) -> None:
    emulator, server = gemini
    emulator.faults.inject("generate", Hang(3))
    with pytest.raises(TransientError) as caught:
        await writer(server, timeout=0.5).write(REQUEST)
    assert caught.value.code in {"gemini_timeout", "gemini_unavailable"}


def test_schema_violations_are_reported() -> None:
    with pytest.raises(TransientError, match="does not validate"):
        script_from_answer('{"title": "t", "description": "d", "tags": [], "segments": []}')
    with pytest.raises(TransientError, match="no text"):
        script_from_answer(None)
