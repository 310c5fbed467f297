"""The YouTube publisher against the local emulator of the real protocol, failures included."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.emulators.youtube import Cut, Hang, Status, YouTubeEmulator
from tests.support.wait import wait_until
from ytmaker_upload.adapters.youtube import OAuthClient, RetryPolicy, YouTubePublisher
from ytmaker_upload.domain import CHUNK_UNIT, VideoMetadata
from ytmaker_upload.errors import PublishError

META = VideoMetadata(title="Tides, explained", description="How the moon pulls", tags=("sea",))
FAST = RetryPolicy(max_tries=4, base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture
async def emulator() -> AsyncIterator[YouTubeEmulator]:
    async with YouTubeEmulator() as running:
        yield running


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "video.mp4"
    path.write_bytes(os.urandom(5 * CHUNK_UNIT + 12345))  # six chunks of one unit, last short
    return path


def publisher(
    emulator: YouTubeEmulator,
    http: httpx.AsyncClient,
    *,
    refresh_token: str | None = None,
    retry: RetryPolicy = FAST,
) -> YouTubePublisher:
    oauth = OAuthClient(
        client_id=emulator.client_id,
        client_secret=SecretStr(emulator.client_secret),
        refresh_token=SecretStr(refresh_token or emulator.refresh_token),
        token_url=emulator.token_url,
    )
    return YouTubePublisher(
        http, oauth, api_base=emulator.base_url, chunk_bytes=CHUNK_UNIT, retry=retry
    )


class Progress:
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    async def __call__(self, done: int, total: int) -> None:
        self.seen.append((done, total))


def size(path: Path) -> int:
    return path.stat().st_size


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_video_goes_up_in_256k_chunks_with_progress_and_metadata(
    emulator: YouTubeEmulator, video: Path
) -> None:
    progress = Progress()
    async with httpx.AsyncClient(timeout=5) as http:
        uploaded = await publisher(emulator, http).upload(video, META, progress)
    stored = emulator.videos[uploaded.video_id]
    assert stored.sha256 == sha(video)
    assert stored.resource["snippet"]["title"] == "Tides, explained"
    assert stored.resource["status"]["privacyStatus"] == "private"
    assert uploaded.url.endswith(uploaded.video_id)
    total = size(video)
    assert [d for d, _ in progress.seen] == [*(CHUNK_UNIT * k for k in range(1, 6)), total]
    assert emulator.count("chunk") == 6 and emulator.count("token") == 1


async def test_transient_errors_are_retried_and_the_upload_resumes_from_the_stored_byte(
    emulator: YouTubeEmulator, video: Path
) -> None:
    emulator.inject("initiate", Status(503))
    emulator.inject("chunk", Status(429, retry_after=0), Status(503))
    progress = Progress()
    async with httpx.AsyncClient(timeout=5) as http:
        uploaded = await publisher(emulator, http).upload(video, META, progress)
    assert emulator.videos[uploaded.video_id].sha256 == sha(video)
    assert emulator.count("initiate", 503) == 1
    assert emulator.count("status") == 2  # asked where it stood after each failure
    assert progress.seen[-1] == (size(video),) * 2


async def test_a_connection_cut_mid_chunk_resumes_from_the_acknowledged_byte(
    emulator: YouTubeEmulator, tmp_path: Path
) -> None:
    video = tmp_path / "big.mp4"
    video.write_bytes(os.urandom(9 * CHUNK_UNIT + 1))
    emulator.inject("chunk", Status(308), Cut(after_bytes=CHUNK_UNIT + 1000))  # 1st ok-ish
    progress = Progress()
    async with httpx.AsyncClient(timeout=5) as http:
        pub = publisher(emulator, http)
        pub.chunk_bytes = 4 * CHUNK_UNIT
        uploaded = await pub.upload(video, META, progress)
    assert emulator.videos[uploaded.video_id].sha256 == sha(video)
    # The cut chunk started at 0 (the injected 308 stored nothing); the server kept one whole
    # unit of it, the status query said so, and the next chunk started right there.
    acknowledged = [d for d, _ in progress.seen]
    assert CHUNK_UNIT in acknowledged
    assert CHUNK_UNIT + 4 * CHUNK_UNIT in acknowledged


async def test_a_timeout_is_an_interruption_like_any_other(
    emulator: YouTubeEmulator, video: Path
) -> None:
    emulator.inject("chunk", Hang(2.0))
    async with httpx.AsyncClient(timeout=0.5) as http:
        uploaded = await publisher(emulator, http).upload(video, META, Progress())
    assert emulator.videos[uploaded.video_id].sha256 == sha(video)
    assert emulator.count("status") >= 1


async def test_an_expired_token_is_refreshed_once(emulator: YouTubeEmulator, video: Path) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        pub = publisher(emulator, http)
        await pub.tokens.get()
        emulator.expire_tokens()
        uploaded = await pub.upload(video, META, Progress())
    assert uploaded.video_id in emulator.videos
    assert emulator.count("token") == 2


async def test_persistent_unavailability_gives_up_as_transient(
    emulator: YouTubeEmulator, video: Path
) -> None:
    emulator.inject("initiate", *[Status(503)] * 10)
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(PublishError) as caught:
            await publisher(emulator, http).upload(video, META, Progress())
    assert caught.value.transient and caught.value.code == "upload_unavailable"
    assert emulator.count("initiate") == FAST.max_tries


async def test_a_revoked_refresh_token_fails_at_once_and_permanently(
    emulator: YouTubeEmulator, video: Path
) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(PublishError) as caught:
            await publisher(emulator, http, refresh_token="revoked").upload(video, META, Progress())
    assert not caught.value.transient
    assert "invalid_grant" in caught.value.message or "revoked" in caught.value.message
    assert emulator.count("initiate") == 0


async def test_rejected_metadata_is_a_permanent_error_with_youtubes_reason(
    emulator: YouTubeEmulator, video: Path
) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(PublishError) as caught:
            await publisher(emulator, http).upload(video, VideoMetadata(title=" "), Progress())
    assert not caught.value.transient and "invalidTitle" in caught.value.message


async def test_the_thumbnail_is_set_on_the_uploaded_video(
    emulator: YouTubeEmulator, video: Path, tmp_path: Path
) -> None:
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    emulator.inject("thumbnail", Status(429))
    async with httpx.AsyncClient(timeout=5) as http:
        pub = publisher(emulator, http)
        uploaded = await pub.upload(video, META, Progress())
        answer = await pub.set_thumbnail(uploaded.video_id, thumb)
    assert answer["kind"] == "youtube#thumbnailSetResponse"
    assert emulator.videos[uploaded.video_id].thumbnail == thumb.read_bytes()
    with pytest.raises(PublishError, match="videoNotFound"):
        async with httpx.AsyncClient(timeout=5) as http:
            await publisher(emulator, http).set_thumbnail("nosuchvideo", thumb)


async def test_cancelling_ends_the_transfer_in_flight_within_a_second(
    emulator: YouTubeEmulator, video: Path
) -> None:
    emulator.inject("chunk", Status(308), Hang(30))
    async with httpx.AsyncClient(timeout=60) as http:
        task = asyncio.create_task(publisher(emulator, http).upload(video, META, Progress()))
        await wait_until(lambda: emulator.count("chunk") >= 1, timeout=5, what="first chunk")
        await asyncio.sleep(0.1)  # the second, hanging chunk is in flight
        loop = asyncio.get_running_loop()
        started = loop.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert loop.time() - started < 1.0
    assert not emulator.videos
