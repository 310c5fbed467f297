"""Wiring: settings, the writer, the stage worker, health and signals."""

from __future__ import annotations

from ytmaker_script.adapters.gemini import GeminiWriter
from ytmaker_script.settings import ScriptSettings
from ytmaker_script.stage import OfflineWriter, ScriptWork, ScriptWriter
from ytmaker_shared.stageworker import StageWorker, run_stage_service
from ytmaker_shared.topics import Topic

SERVICE = "script"


def writer_for(settings: ScriptSettings) -> ScriptWriter:
    if settings.gemini_api_key is None:
        return OfflineWriter()
    return GeminiWriter(
        settings.gemini_api_key.get_secret_value(),
        settings.gemini_model,
        base_url=settings.gemini_base_url,
        timeout_s=settings.gemini_timeout_s,
    )


def build(settings: ScriptSettings) -> StageWorker:
    return StageWorker(settings, SERVICE, [ScriptWork(writer_for(settings))], [Topic.TASKS])


def main() -> None:
    settings = ScriptSettings()
    run_stage_service(SERVICE, settings, lambda: build(settings))
