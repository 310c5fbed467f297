"""Wiring: settings, the publisher (YouTube with credentials, else local), the stage worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from ytmaker_shared.artifacts import ArtifactStore
from ytmaker_shared.service import run_service
from ytmaker_shared.stageworker import StageWorker
from ytmaker_shared.topics import Topic
from ytmaker_upload.adapters.channel import YouTubeChannel
from ytmaker_upload.adapters.local import LocalPublisher
from ytmaker_upload.adapters.youtube import (
    OAuthClient,
    RetryPolicy,
    YouTubePublisher,
    youtube_http,
)
from ytmaker_upload.publication import Publisher
from ytmaker_upload.settings import UploadSettings
from ytmaker_upload.stage import StoreJournal, UploadWork

SERVICE = "upload"


def publisher_for(
    settings: UploadSettings, store: ArtifactStore, http: httpx.AsyncClient | None
) -> Publisher:
    if not settings.youtube_configured or http is None:
        return LocalPublisher(settings.publish_dir)
    assert settings.youtube_client_id and settings.youtube_client_secret
    assert settings.youtube_refresh_token
    oauth = OAuthClient(
        client_id=settings.youtube_client_id,
        client_secret=settings.youtube_client_secret,
        refresh_token=settings.youtube_refresh_token,
        token_url=settings.youtube_token_url,
    )
    youtube = YouTubePublisher(
        http,
        oauth,
        api_base=settings.youtube_api_base,
        chunk_bytes=int(settings.youtube_chunk_mib * 2**20),
        retry=RetryPolicy(
            max_tries=settings.youtube_max_tries,
            base_delay_s=settings.youtube_backoff_base_s,
            max_delay_s=settings.youtube_backoff_max_s,
        ),
    )
    return YouTubeChannel(youtube, StoreJournal(store))


@contextlib.asynccontextmanager
async def http_client(settings: UploadSettings) -> AsyncIterator[httpx.AsyncClient | None]:
    if not settings.youtube_configured:
        yield None
        return
    async with youtube_http(settings.youtube_timeout_s) as http:
        yield http


def build(settings: UploadSettings, http: httpx.AsyncClient | None) -> StageWorker:
    store = settings.artifact_store()
    work = UploadWork(store, publisher_for(settings, store, http), settings.publish_privacy)
    return StageWorker(settings, SERVICE, [work], [Topic.TASKS, Topic.RENDER], store=store)


def main() -> None:
    settings = UploadSettings()
    built: list[StageWorker] = []

    async def serve(stopping: asyncio.Event) -> None:
        async with http_client(settings) as http:
            built.append(build(settings, http))  # inside the event loop: aiokafka needs one
            await built[0].run(stopping)

    run_service(SERVICE, settings, serve, lambda: bool(built) and built[0].ready())
