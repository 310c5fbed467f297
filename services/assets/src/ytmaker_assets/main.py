"""Wiring: settings, adapters, the three stages on one stage worker, health and signals."""

from __future__ import annotations

from ytmaker_assets.adapters.speech import best_engine
from ytmaker_assets.settings import AssetsSettings
from ytmaker_assets.stages import (
    AudioWork,
    Avatars,
    AvatarsWork,
    ImageMaker,
    ImagesWork,
    SlideMaker,
)
from ytmaker_shared.stageworker import StageWorker, run_stage_service
from ytmaker_shared.topics import Topic

SERVICE = "assets"


def image_maker(settings: AssetsSettings) -> ImageMaker:
    if settings.stability_api_key is None:
        return SlideMaker()
    from ytmaker_assets.adapters.stability import StabilityImages

    return StabilityImages(
        settings.stability_api_key.get_secret_value(),
        base_url=settings.stability_base_url,
        endpoint=settings.stability_endpoint,
        timeout_s=settings.http_timeout_s,
    )


def avatars(settings: AssetsSettings) -> Avatars | None:
    if settings.did_api_key is None:
        return None
    from ytmaker_assets.adapters.did import DIDAvatars

    return DIDAvatars(
        settings.did_api_key.get_secret_value(),
        base_url=settings.did_base_url,
        source_url=settings.did_source_url,
        timeout_s=settings.http_timeout_s,
    )


def build(settings: AssetsSettings) -> StageWorker:
    works = [
        ImagesWork(image_maker(settings)),
        AudioWork(best_engine(settings.speech_engine)),
        AvatarsWork(avatars(settings)),
    ]
    return StageWorker(settings, SERVICE, works, [Topic.SCRIPT])


def main() -> None:
    settings = AssetsSettings()
    run_stage_service(SERVICE, settings, lambda: build(settings))
