"""The YouTube publisher against the local emulator of the real protocol, failures included."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.emulators.youtube import Cut, Drip, Flood, Hang, Status, YouTubeEmulator
from tests.support.forward_proxy import ForwardProxy, clear_proxy_settings
from tests.support.wait import wait_until
from ytmaker_upload.adapters.youtube import (
    MAX_ANSWER_BYTES,
    OAuthClient,
    RetryPolicy,
    YouTubePublisher,
    youtube_http,
)
from ytmaker_upload.domain import CHUNK_UNIT, VideoMetadata
from ytmaker_upload.errors import PublishError
from ytmaker_upload.main import http_client
from ytmaker_upload.settings import UploadSettings

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


#: Far past the bound on an answer (1 MiB), small enough to be read whole without one.
FLOOD = 64 * 2**20


async def all_streams_ended(emulator: YouTubeEmulator) -> None:
    await wait_until(
        lambda: all(s.ended for s in emulator.streamed), timeout=10, what="the answers' end"
    )


@pytest.mark.parametrize(
    ("kind", "status"),
    [("initiate", 200), ("chunk", 200), ("chunk", 503), ("chunk", 403), ("thumbnail", 200)],
)
async def test_an_answer_past_the_bound_is_cut_and_retried_like_a_broken_connection(
    emulator: YouTubeEmulator, video: Path, tmp_path: Path, kind: str, status: int
) -> None:
    """The session's answer, the video resource, the thumbnail's answer or an error body: a
    broken or hostile server could send gigabytes, which httpx would read whole. The client
    the service builds stops at 1 MiB; that request is an interruption, retried."""
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    emulator.inject(kind, Flood(FLOOD, status=status))
    async with asyncio.timeout(30), youtube_http(5) as http:
        pub = publisher(emulator, http)
        uploaded = await pub.upload(video, META, Progress())
        answer = await pub.set_thumbnail(uploaded.video_id, thumb)
    assert emulator.videos[uploaded.video_id].sha256 == sha(video)
    assert answer["kind"] == "youtube#thumbnailSetResponse"
    await all_streams_ended(emulator)
    [flood] = emulator.streamed
    assert not flood.whole and flood.sent > MAX_ANSWER_BYTES


async def test_answers_past_the_bound_every_time_give_up_as_transient(
    emulator: YouTubeEmulator, video: Path
) -> None:
    emulator.inject("initiate", *[Flood(FLOOD)] * FAST.max_tries)
    async with asyncio.timeout(30), youtube_http(5) as http:
        with pytest.raises(PublishError) as caught:
            await publisher(emulator, http).upload(video, META, Progress())
    assert caught.value.transient and caught.value.code == "upload_unavailable"
    assert "AnswerTooLarge" in caught.value.message
    await all_streams_ended(emulator)
    assert len(emulator.streamed) == FAST.max_tries
    assert not any(s.whole for s in emulator.streamed)


async def test_a_chunk_answer_dripping_past_the_answer_time_is_an_interruption(
    emulator: YouTubeEmulator, video: Path
) -> None:
    """httpx's timeouts are per read: a byte every 50 ms held a request for as long as the
    server liked. The whole answer must come within `answer_within_s` of the request having
    been sent (the per-request timeout unless told otherwise); past it, the upload asks
    where it stands and resumes."""
    emulator.inject("chunk", Status(308), Drip(every_s=0.05))
    started = time.monotonic()
    async with asyncio.timeout(30), youtube_http(10, answer_within_s=0.5) as http:
        uploaded = await publisher(emulator, http).upload(video, META, Progress())
    elapsed = time.monotonic() - started
    assert emulator.videos[uploaded.video_id].sha256 == sha(video)
    assert emulator.count("status") >= 1
    assert elapsed < 5.0, f"took {elapsed:.1f}s"
    await all_streams_ended(emulator)
    assert emulator.streamed[0].sent > 1 and not emulator.streamed[0].whole


@pytest.mark.parametrize("fault", [Flood(FLOOD), Drip(every_s=0.05)], ids=["too-large", "too-slow"])
async def test_a_token_answer_too_large_or_too_slow_is_a_transient_publish_error(
    emulator: YouTubeEmulator, video: Path, fault: Flood | Drip
) -> None:
    emulator.inject("token", fault)
    started = time.monotonic()
    async with asyncio.timeout(30), youtube_http(10, answer_within_s=0.5) as http:
        with pytest.raises(PublishError) as caught:
            await publisher(emulator, http).upload(video, META, Progress())
    elapsed = time.monotonic() - started
    assert caught.value.transient and caught.value.code == "oauth_unreachable"
    assert elapsed < 5.0, f"took {elapsed:.1f}s"
    assert emulator.count("initiate") == 0
    await all_streams_ended(emulator)
    assert not emulator.streamed[0].whole


class SlowUplink(httpx.AsyncByteStream):
    """A request body sent in `pieces`, `pause_s` apart: an uplink slower than the answer's
    time limit. `took` keeps how long each body took to go out."""

    def __init__(self, inner: httpx.AsyncByteStream, took: list[float], pieces: int = 4) -> None:
        self.inner, self.took, self.pieces = inner, took, pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        started = time.monotonic()
        data = b"".join([part async for part in self.inner])
        step = -(-len(data) // self.pieces)
        for at in range(0, len(data), step):
            await asyncio.sleep(0.1)
            yield data[at : at + step]
        self.took.append(time.monotonic() - started)


async def test_a_chunk_slower_to_send_than_the_answer_time_is_not_cut_short(
    emulator: YouTubeEmulator, video: Path
) -> None:
    """The answer's time counts from when the request has been sent: a chunk that takes
    longer than that to go up (a slow uplink, a large chunk) is not cut short."""
    took: list[float] = []

    async def slow_uplink(request: httpx.Request) -> None:
        if request.method == "PUT" and not request.headers["content-range"].startswith("bytes */"):
            assert isinstance(request.stream, httpx.AsyncByteStream)
            request.stream = SlowUplink(request.stream, took)

    async with asyncio.timeout(30), youtube_http(5, answer_within_s=0.2) as http:
        http.event_hooks = {"request": [slow_uplink], "response": []}
        uploaded = await publisher(emulator, http).upload(video, META, Progress())
    assert emulator.videos[uploaded.video_id].sha256 == sha(video)
    assert emulator.count("status") == 0, "a chunk was interrupted"
    assert len(took) == 6 and min(took) > 0.3  # each chunk took longer than the answer's time


async def test_the_service_goes_out_through_the_proxy_the_environment_names(
    emulator: YouTubeEmulator, video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token, the upload session and every chunk go through `HTTP(S)_PROXY`."""
    settings = UploadSettings(
        youtube_client_id="id",
        youtube_client_secret=SecretStr("secret"),
        youtube_refresh_token=SecretStr("token"),
    )
    clear_proxy_settings(monkeypatch)
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with asyncio.timeout(30), http_client(settings) as http:
            assert http is not None
            uploaded = await publisher(emulator, http).upload(video, META, Progress())
    assert emulator.videos[uploaded.video_id].sha256 == sha(video)
    through = [seen for seen in proxy.seen if seen.split(" ")[1].startswith(emulator.base_url)]
    assert (
        len(through) == len(proxy.seen) == emulator.count("token") + 1 + 6
    )  # the session, six chunks


async def test_the_service_builds_its_client_with_the_bounds(
    emulator: YouTubeEmulator, video: Path
) -> None:
    settings = UploadSettings(
        youtube_client_id="id",
        youtube_client_secret=SecretStr("secret"),
        youtube_refresh_token=SecretStr("token"),
        youtube_timeout_s=1.0,
    )
    emulator.inject("initiate", Flood(FLOOD))
    emulator.inject("chunk", Status(308), Drip(every_s=0.05, for_s=30))
    started = time.monotonic()
    async with asyncio.timeout(60), http_client(settings) as http:
        assert http is not None
        uploaded = await publisher(emulator, http).upload(video, META, Progress())
    assert emulator.videos[uploaded.video_id].sha256 == sha(video)
    assert time.monotonic() - started < 10  # the drip was cut at the request's timeout (1 s)
    await all_streams_ended(emulator)
    assert not any(s.whole for s in emulator.streamed)
