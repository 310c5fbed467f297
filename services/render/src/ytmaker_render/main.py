"""Wiring: settings, the artifact store, the render stage, the stage worker, health, signals."""

from __future__ import annotations

import asyncio

from ytmaker_render.adapters.ffmpeg import ffmpeg_executable
from ytmaker_render.filtergraph import EncodeOptions
from ytmaker_render.settings import RenderSettings
from ytmaker_render.stage import RenderOptions, RenderWork
from ytmaker_shared.service import run_service
from ytmaker_shared.stageworker import StageWorker
from ytmaker_shared.topics import Topic

SERVICE = "render"


def build(settings: RenderSettings) -> StageWorker:
    store = settings.artifact_store()
    options = RenderOptions(
        ffmpeg=settings.ffmpeg_path or ffmpeg_executable(),
        encode=EncodeOptions(
            preset=settings.render_preset,
            crf=settings.render_crf,
            zoom=settings.render_zoom,
            supersample=settings.render_supersample,
            threads=settings.render_threads,
        ),
        fade_seconds=settings.render_fade_s,
        pause_seconds=settings.render_pause_s,
    )
    work = RenderWork(store, options)
    return StageWorker(settings, SERVICE, [work], [Topic.ASSETS], store=store)


def main() -> None:
    settings = RenderSettings()
    built: list[StageWorker] = []

    async def serve(stopping: asyncio.Event) -> None:
        built.append(build(settings))  # inside the event loop: aiokafka needs one
        await built[0].run(stopping)

    run_service(SERVICE, settings, serve, lambda: bool(built) and built[0].ready())
