"""A task's video is published once even when the answer that made it was lost and its upload
session is gone by the next try (decision 0139): the video is looked for by the task's marker
tag among the channel's uploads, only when its last chunk went out."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.emulators.youtube import (
    UPLOAD_SCOPE,
    Cut,
    LoseAnswer,
    Status,
    YouTubeEmulator,
)
from tests.support.wait import wait_until
from ytmaker_shared.artifacts import MemoryArtifactStore
from ytmaker_upload.adapters.channel import YouTubeChannel
from ytmaker_upload.adapters.youtube import OAuthClient, RetryPolicy, YouTubePublisher
from ytmaker_upload.domain import CHUNK_UNIT, VideoMetadata, upload_marker
from ytmaker_upload.errors import PublishError
from ytmaker_upload.stage import StoreJournal

META = VideoMetadata(title="Tides", tags=("sea",))
FAST = RetryPolicy(max_tries=3, base_delay_s=0.01, max_delay_s=0.02)
LOOKUPS = ("channels.list", "playlistItems.list", "videos.list")


@pytest.fixture
async def emulator() -> AsyncIterator[YouTubeEmulator]:
    async with YouTubeEmulator() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def youtube(emulator: YouTubeEmulator, http: httpx.AsyncClient) -> YouTubePublisher:
    oauth = OAuthClient(
        emulator.client_id,
        SecretStr(emulator.client_secret),
        SecretStr(emulator.refresh_token),
        emulator.token_url,
    )
    return YouTubePublisher(
        http, oauth, api_base=emulator.base_url, chunk_bytes=CHUNK_UNIT, retry=FAST
    )


def channel(
    emulator: YouTubeEmulator, http: httpx.AsyncClient, listing_lag_s: float = 600
) -> YouTubeChannel:
    journal = StoreJournal(MemoryArtifactStore(uuid.uuid4().hex))
    return YouTubeChannel(youtube(emulator, http), journal, listing_lag_s=listing_lag_s)


def clip(tmp_path: Path, size: int = 2 * CHUNK_UNIT + 7, name: str = "video.mp4") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


async def publish(chan: YouTubeChannel, task: str, video: Path) -> str:
    async def progress(done: int, total: int) -> None:
        pass

    return (await chan.publish(task, video, None, META, progress)).video_id


def lookups(emulator: YouTubeEmulator) -> int:
    return sum(emulator.count(kind) for kind in LOOKUPS)


async def test_a_fresh_upload_is_marked_and_looks_for_nothing(
    emulator: YouTubeEmulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    video_id = await publish(channel(emulator, http), "task-1", clip(tmp_path))
    tags = emulator.videos[video_id].resource["snippet"]["tags"]
    assert tags == [upload_marker("task-1"), "sea"]
    assert lookups(emulator) == 0


async def test_a_lost_last_answer_then_a_gone_session_finds_the_video_in_the_same_attempt(
    emulator: YouTubeEmulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    video = clip(tmp_path, CHUNK_UNIT - 7)  # one chunk: the last
    emulator.inject("chunk", LoseAnswer())
    emulator.inject("status", Status(404))
    chan = channel(emulator, http)
    video_id = await publish(chan, "task-1", video)
    assert list(emulator.videos) == [video_id] and emulator.count("initiate") == 1
    assert [emulator.count(kind) for kind in LOOKUPS] == [1, 1, 1]  # 3 units of quota
    assert await publish(chan, "task-1", video) == video_id


@pytest.mark.parametrize("lost", [False, True], ids=["uploaded", "found"])
async def test_the_whole_video_is_reported_once_whether_uploaded_or_found(
    emulator: YouTubeEmulator, http: httpx.AsyncClient, tmp_path: Path, lost: bool
) -> None:
    video = clip(tmp_path, CHUNK_UNIT - 7)
    if lost:
        emulator.inject("chunk", LoseAnswer())
        emulator.inject("status", Status(404))
    reports: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        reports.append((done, total))

    await channel(emulator, http).publish("task-1", video, None, META, progress)
    whole = (CHUNK_UNIT - 7, CHUNK_UNIT - 7)
    assert reports[-1] == whole and reports.count(whole) == 1, reports


async def test_a_session_gone_before_its_last_chunk_starts_over_without_looking(
    emulator: YouTubeEmulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    video = clip(tmp_path)
    chan = channel(emulator, http)
    emulator.inject("chunk", Status(308), Cut(after_bytes=CHUNK_UNIT + 10))
    emulator.inject("status", Status(503), Status(503))
    with pytest.raises(PublishError, match="503"):
        await publish(chan, "task-1", video)
    emulator.expire_sessions()
    video_id = await publish(chan, "task-1", video)
    assert list(emulator.videos) == [video_id] and emulator.count("initiate") == 2
    assert lookups(emulator) == 0


async def test_a_video_not_listed_yet_is_not_uploaded_again_but_looked_for_later(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with YouTubeEmulator(listing_delay_s=0.5) as emulator:
        video = clip(tmp_path, CHUNK_UNIT - 7)
        chan = channel(emulator, http)
        emulator.inject("chunk", LoseAnswer())
        emulator.inject("status", Status(404))
        with pytest.raises(PublishError) as caught:
            await publish(chan, "task-1", video)
        assert caught.value.code == "upload_unconfirmed" and caught.value.transient
        assert caught.value.retry_after_s is not None and 590 < caught.value.retry_after_s <= 600
        [made] = emulator.videos
        await wait_until(lambda: _listed(emulator), timeout=5, what="the video listed")
        assert await publish(chan, "task-1", video) == made
    assert list(emulator.videos) == [made] and emulator.count("initiate") == 1


def _listed(emulator: YouTubeEmulator) -> bool:
    now = time.monotonic()
    return all(now - v.made_at >= emulator.listing_delay_s for v in emulator.videos.values())


async def test_a_last_chunk_that_never_arrived_is_sent_again_once_the_listing_had_its_time(
    emulator: YouTubeEmulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The last chunk was cut before YouTube had it all: no video. With the listing's time
    past, not finding the video means it is not there, and the upload starts over."""
    video = clip(tmp_path, CHUNK_UNIT - 7)
    emulator.inject("chunk", Cut(after_bytes=3))
    emulator.inject("status", Status(404))
    video_id = await publish(channel(emulator, http, listing_lag_s=0), "task-1", video)
    assert list(emulator.videos) == [video_id] and emulator.count("initiate") == 2
    assert [emulator.count(kind) for kind in LOOKUPS] == [1, 1, 0]  # an empty playlist


async def test_a_later_render_with_other_bytes_still_finds_the_lost_answers_video(
    emulator: YouTubeEmulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    chan = channel(emulator, http)
    emulator.inject("chunk", LoseAnswer())
    emulator.inject("status", Status(503), Status(503))
    with pytest.raises(PublishError):
        await publish(chan, "task-1", clip(tmp_path, 1000))
    [made] = emulator.videos
    assert await publish(chan, "task-1", clip(tmp_path, 2000, "other.mp4")) == made
    assert list(emulator.videos) == [made] and emulator.count("initiate") == 1


async def test_without_the_readonly_scope_the_lookup_fails_saying_what_to_grant(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with YouTubeEmulator(scopes=(UPLOAD_SCOPE,)) as emulator:
        emulator.inject("chunk", LoseAnswer())
        emulator.inject("status", Status(404))
        with pytest.raises(PublishError) as caught:
            await publish(channel(emulator, http), "task-1", clip(tmp_path, 1000))
    assert caught.value.code == "youtube_scope_missing" and not caught.value.transient
    assert "youtube.readonly" in caught.value.message
    assert len(emulator.videos) == 1 and emulator.count("initiate") == 1


async def test_the_marked_video_is_found_on_a_later_page(
    emulator: YouTubeEmulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    pub = youtube(emulator, http)
    tiny = clip(tmp_path, 10)

    async def progress(done: int, total: int) -> None:
        pass

    marked = await pub.upload(tiny, META.marked(upload_marker("task-1")), progress)
    for _ in range(60):
        await pub.upload(tiny, META, progress)
    found = await pub.find_upload(upload_marker("task-1"))
    assert found is not None and found.video_id == marked.video_id
    assert [emulator.count(kind) for kind in LOOKUPS] == [1, 2, 2]
    assert await pub.find_upload(upload_marker("task-2")) is None
    assert emulator.count("playlistItems.list") == 2 + 2  # both pages, and no more were there


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"channels": {"items": "many"}}, "protocol_error"),
        ({"channels": {"items": []}}, None),
        ({"channels": {"items": [{"contentDetails": {"relatedPlaylists": 5}}]}}, None),
        (
            {
                "playlistItems": {"items": [{"contentDetails": {"videoId": "../x"}}, 7]},
            },
            None,
        ),
        (
            {
                "playlistItems": {"items": [{"contentDetails": {"videoId": "abc"}}]},
                "videos": {"items": [{"id": "other", "snippet": {"tags": ["MARK"]}}]},
            },
            None,
        ),
        (
            {
                "playlistItems": {"items": [{"contentDetails": {"videoId": "abc"}}]},
                "videos": {"items": [{"id": "abc", "snippet": {"tags": "MARK"}}]},
            },
            None,
        ),
    ],
    ids=[
        "items-not-a-list",
        "no-channel",
        "no-uploads-playlist",
        "odd-video-ids",
        "another-videos-tags",
        "tags-not-a-list",
    ],
)
async def test_odd_list_answers_find_nothing_or_fail_as_a_publish_error(
    answers: dict[str, Any], expected: str | None
) -> None:
    """Answers are not trusted: what is not the shape Google documents finds nothing (and
    never a video the search did not ask about) or is a `PublishError`."""
    bodies: dict[str, Any] = {
        "channels": {"items": [{"contentDetails": {"relatedPlaylists": {"uploads": "UUx"}}}]},
        "playlistItems": {"items": []},
        "videos": {"items": []},
        **answers,
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})
        return httpx.Response(200, json=bodies[request.url.path.rsplit("/", 1)[1]])

    oauth = OAuthClient("id", SecretStr("s"), SecretStr("r"), "https://api.test/token")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        pub = YouTubePublisher(client, oauth, api_base="https://api.test", retry=FAST)
        if expected is None:
            assert await pub.find_upload("MARK") is None
        else:
            with pytest.raises(PublishError) as caught:
                await pub.find_upload("MARK")
            assert caught.value.code == expected and caught.value.transient
