"""The YouTube publisher against answers no well-behaved server gives: malformed JSON, wrong
types, missing fields, odd `Range` headers, odd `Retry-After`, a session on a foreign host.
Whatever comes back, the adapter raises `PublishError` (never anything else), never sends
the access token to another host, and never reports more bytes than the video has."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ytmaker_shared.events import ErrorInfo, StageCompletedPayload
from ytmaker_upload.adapters.channel import YouTubeChannel
from ytmaker_upload.adapters.youtube import OAuthClient, RetryPolicy, YouTubePublisher
from ytmaker_upload.domain import CHUNK_UNIT, VideoMetadata
from ytmaker_upload.errors import PublishError

API = "https://api.test"
SESSION = f"{API}/upload/youtube/v3/videos?uploadType=resumable&upload_id=s1"
META = VideoMetadata(title="Tides")
FAST = RetryPolicy(max_tries=3, base_delay_s=0.001, max_delay_s=0.01)
VIDEO_SIZE = 2 * CHUNK_UNIT + 10

Answer = Callable[[httpx.Request], httpx.Response]


class FakeYouTube:
    """A scripted API: `answers[kind]` is a list of responses (or functions of the request)
    used one per request of that kind, the last one again when the list runs out."""

    def __init__(self, **answers: list[httpx.Response | Answer]) -> None:
        self.answers = {
            "token": [httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})],
            "initiate": [httpx.Response(200, headers={"location": SESSION})],
            "put": [self._store],
            "thumbnail": [httpx.Response(200, json={"items": []})],
            **answers,
        }
        self.requests: list[tuple[str, httpx.Request]] = []
        self.stored = 0

    def _store(self, request: httpx.Request) -> httpx.Response:
        spec = request.headers["content-range"].removeprefix("bytes ")
        span, _, total = spec.partition("/")
        if span != "*":
            self.stored = int(span.partition("-")[2]) + 1
        if self.stored == int(total):
            return httpx.Response(201, json={"id": "vid_123-ABC"})
        stored = [("range", f"bytes=0-{self.stored - 1}")] if self.stored else []
        return httpx.Response(308, headers=stored)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            kind = "token"
        elif request.url.path.endswith("/thumbnails/set"):
            kind = "thumbnail"
        elif request.method == "POST":
            kind = "initiate"
        else:
            kind = "put"
        self.requests.append((kind, request))
        queue = self.answers[kind]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer if isinstance(answer, httpx.Response) else answer(request)

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.requests if k == kind)


def publisher(fake: FakeYouTube) -> tuple[YouTubePublisher, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    oauth = OAuthClient("id", SecretStr("secret"), SecretStr("refresh"), f"{API}/token")
    return YouTubePublisher(http, oauth, api_base=API, chunk_bytes=CHUNK_UNIT, retry=FAST), http


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "video.mp4"
    path.write_bytes(os.urandom(VIDEO_SIZE))
    return path


class Progress:
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    async def __call__(self, done: int, total: int) -> None:
        self.seen.append((done, total))


async def upload(fake: FakeYouTube, video: Path, progress: Progress | None = None) -> str:
    pub, http = publisher(fake)
    async with http:
        uploaded = await pub.upload(video, META, progress or Progress())
    return uploaded.video_id


def raw(status: int, body: bytes, **headers: str) -> httpx.Response:
    encoded = [(k.replace("_", "-").encode(), v.encode("latin-1")) for k, v in headers.items()]
    return httpx.Response(status, content=body, headers=encoded)


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"errors": [{"reason": 5}], "message": "bad"}},
        {"error": {"errors": 7, "message": ["not", "text"]}},
        {"error": {"errors": [{"reason": None}, {"reason": ["x"]}]}},
        {"error": ["x"]},
        [1, 2],
    ],
    ids=["int-reason", "int-errors", "odd-reasons", "list-error", "list-body"],
)
async def test_a_malformed_error_body_is_a_permanent_publish_error(video: Path, body: Any) -> None:
    fake = FakeYouTube(initiate=[raw(400, json.dumps(body).encode())])
    with pytest.raises(PublishError) as caught:
        await upload(fake, video)
    assert not caught.value.transient and "HTTP 400" in caught.value.message


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b"[]",
        b"not json",
        b'{"access_token": null}',
        b'{"access_token": 12}',
        b'{"access_token": ""}',
        b'{"access_token": "t\\u00f6k"}',
        b'{"access_token": "a\\nb"}',
        b'{"access_token": "tok", "expires_in": "soon"}',
        b'{"access_token": "tok", "expires_in": [1]}',
    ],
)
async def test_a_token_answer_without_a_usable_token_is_a_publish_error(
    video: Path, body: bytes
) -> None:
    fake = FakeYouTube(token=[raw(200, body)])
    with pytest.raises(PublishError) as caught:
        await upload(fake, video)
    assert caught.value.transient and caught.value.code == "oauth_protocol_error"
    assert fake.count("initiate") == 0


@pytest.mark.parametrize(
    "body",
    [b"{}", b"<html>ok</html>", b'{"id": 5}', b'{"id": ""}', b'{"id": "../../x?y=1"}', b"[]"],
)
async def test_an_upload_answer_without_a_video_id_is_a_transient_publish_error(
    video: Path, body: bytes
) -> None:
    def put(request: httpx.Request) -> httpx.Response:
        if request.headers["content-range"].startswith(f"bytes {2 * CHUNK_UNIT}-"):
            return raw(201, body)
        return fake._store(request)

    fake = FakeYouTube(put=[put])
    with pytest.raises(PublishError) as caught:
        await upload(fake, video)
    assert caught.value.transient and caught.value.code == "protocol_error"


@pytest.mark.parametrize(
    "odd",
    [
        "bytes=0-",
        "bytes=5-10",
        "bytes=0-1, 3-4",
        "items=0-5",
        "bytes=0-" + "9" * 30,
        "bytes=0-" + "9" * 5000,
        f"bytes=0-{VIDEO_SIZE}",
    ],
    ids=["open", "not-from-0", "two-ranges", "other-unit", "huge", "5000-digits", "past-end"],
)
async def test_an_odd_range_on_a_308_is_asked_again_and_never_reported_as_progress(
    video: Path, odd: str
) -> None:
    answers: list[httpx.Response | Answer] = [httpx.Response(308, headers={"range": odd})]
    fake = FakeYouTube(put=[*answers, lambda r: fake._store(r)])
    progress = Progress()
    video_id = await upload(fake, video, progress)
    assert video_id == "vid_123-ABC"
    assert all(0 <= done <= total == VIDEO_SIZE for done, total in progress.seen)
    assert progress.seen[-1] == (VIDEO_SIZE, VIDEO_SIZE)


@pytest.mark.parametrize("odd", ["²", "-5", "1e400", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"])
async def test_an_odd_retry_after_is_a_plain_backoff(video: Path, odd: str) -> None:
    fake = FakeYouTube(
        initiate=[
            raw(503, b"", retry_after=odd),
            httpx.Response(200, headers={"location": SESSION}),
        ]
    )
    assert await upload(fake, video) == "vid_123-ABC"
    assert fake.count("initiate") == 2


async def test_a_retry_after_beyond_the_backoff_cap_is_handed_to_the_stage(video: Path) -> None:
    fake = FakeYouTube(initiate=[raw(429, b"", retry_after="120")])
    with pytest.raises(PublishError) as caught:
        await upload(fake, video)
    assert caught.value.transient and caught.value.retry_after_s == 120
    assert fake.count("initiate") == 1  # nothing sent before the server said it may be


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.test/upload?upload_id=s1",
        "http://api.test/upload/youtube/v3/videos?upload_id=s1",
        "https://api.test.evil.test/upload?upload_id=s1",
        "//evil.test/upload",
    ],
)
async def test_the_access_token_never_goes_to_a_session_on_another_host(
    video: Path, location: str
) -> None:
    fake = FakeYouTube(initiate=[httpx.Response(200, headers={"location": location})])
    with pytest.raises(PublishError) as caught:
        await upload(fake, video)
    assert caught.value.code == "protocol_error" and not caught.value.transient
    assert all(r.url.host == "api.test" and r.url.scheme == "https" for _, r in fake.requests)


class Journal:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    async def load(self, task_id: str) -> dict[str, Any] | None:
        return self.entries.get(task_id)

    async def save(self, task_id: str, entry: dict[str, Any]) -> None:
        self.entries[task_id] = dict(entry)


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": "x"}',
        b'{"items": [5]}',
        b'{"items": [{"high": "x"}]}',
        b'{"items": [{"high": {"url": 5}}]}',
        b"[]",
        b"nonsense",
    ],
)
async def test_a_malformed_thumbnail_answer_does_not_fail_a_published_video(
    video: Path, tmp_path: Path, body: bytes
) -> None:
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(b"\xff\xd8" + os.urandom(100))
    fake = FakeYouTube(thumbnail=[raw(200, body)])
    pub, http = publisher(fake)
    async with http:
        publication = await YouTubeChannel(pub, Journal()).publish(
            "t1", video, thumb, META, Progress()
        )
    assert publication.video_id == "vid_123-ABC"
    assert publication.thumbnail_uri is None


async def test_a_thumbnail_refused_at_length_still_completes_the_stage(
    video: Path, tmp_path: Path
) -> None:
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(b"\xff\xd8" + os.urandom(100))
    long = {"error": {"message": "no " * 20000, "errors": [{"reason": "r" * 20000}]}}
    fake = FakeYouTube(thumbnail=[raw(403, json.dumps(long).encode())])
    pub, http = publisher(fake)
    async with http:
        publication = await YouTubeChannel(pub, Journal()).publish(
            "t1", video, thumb, META, Progress()
        )
    assert publication.details["thumbnail_error"].startswith("thumbnail: HTTP 403")
    StageCompletedPayload(result=publication.result())  # fits an event
    ErrorInfo(code="youtube_rejected", message=publication.details["thumbnail_error"])


def refused(status: int, reason: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": status, "message": reason, "errors": [{"reason": reason}]}}
    )


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded"])
async def test_a_403_rate_limit_is_retried_like_a_429(video: Path, reason: str) -> None:
    # YouTube Data API, "Errors": these 403s mean "too many requests", not "forbidden".
    fake = FakeYouTube(
        initiate=[refused(403, reason), httpx.Response(200, headers={"location": SESSION})],
        put=[refused(403, reason), lambda r: fake._store(r)],
    )
    assert await upload(fake, video) == "vid_123-ABC"
    assert fake.count("initiate") == 2


async def test_other_403s_stay_permanent(video: Path) -> None:
    fake = FakeYouTube(initiate=[refused(403, "forbidden")])
    with pytest.raises(PublishError) as caught:
        await upload(fake, video)
    assert not caught.value.transient and fake.count("initiate") == 1


@pytest.mark.parametrize("where", ["initiate", "put"])
async def test_the_daily_quota_used_up_fails_at_once_saying_when_it_comes_back(
    video: Path, where: str
) -> None:
    # quotaExceeded: the project's daily units are spent until midnight Pacific time; an
    # attempt waiting for that would hold the stage for hours, past the stall watch's limit.
    quota = refused(403, "quotaExceeded")
    session = httpx.Response(200, headers={"location": SESSION})
    fake = FakeYouTube(**({"initiate": [quota]} if where == "initiate" else {
        "initiate": [session], "put": [quota]}))  # fmt: skip
    with pytest.raises(PublishError) as caught:
        await upload(fake, video)
    assert not caught.value.transient
    assert caught.value.code == "youtube_quota_exceeded"
    assert "midnight Pacific time" in caught.value.message
    assert fake.count("initiate") == 1
