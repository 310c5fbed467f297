"""YouTube Data API v3 publisher on httpx: OAuth refresh-token flow, resumable upload, thumbnail.

The protocol (Google's "resumable upload protocol" guide):
1. `POST {api}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status` with the
   video resource → 200 and the session URI in `Location`.
2. `PUT` the file to the session URI in chunks (multiples of 256 KiB) with `Content-Range`;
   308 with `Range: bytes=0-N` acknowledges N+1 bytes; 200/201 carries the video resource.
3. After an interruption (connection error, timeout, 5xx, 429, a 403 whose reason is
   `rateLimitExceeded`): `PUT` with `Content-Range: bytes */total` asks where the upload
   stands, and the upload resumes from the acknowledged byte, with exponential backoff
   between tries.
4. `POST {api}/upload/youtube/v3/thumbnails/set?videoId=ID` with the JPEG.

401 refreshes the access token once; 404/410 on the session means it is gone (expired, about a
week after it began, completed or not): `SessionGone`, and the caller decides whether its video
may exist before it starts over (`on_last_chunk` tells it when that became possible, and
`find_upload` looks for the video by the marker among its tags: `channels.list` for the
uploads playlist, then `playlistItems.list` and `videos.list` a page of 50 at a time, one unit
of quota each, with the youtube.readonly scope; decision 0139). Other 4xx are permanent:
`PublishError(transient=False)`. Retries exhausted give `PublishError(transient=True)` for the
stage to retry later; so does a `Retry-After` longer than the backoff's cap (with
`retry_after_s`, so that nothing is sent before it). Cancelling the calling task ends the
transfer in flight at once (httpx closes the connection).

Answers are not trusted: a malformed token, error or video resource, or a `Range` that is not
`bytes=0-N` within the file, is a `PublishError`, never another exception; the access token is
only sent to the API's own scheme and host (a session `Location` elsewhere is refused).

Every answer is bounded by the client `youtube_http` builds (`ytmaker_shared.http`): at most
`MAX_ANSWER_BYTES` (a token, a video resource, a thumbnail answer or an error is JSON of a few
KiB), all of it within `answer_within_s` of the request having been sent. That limit starts
once a request is sent, so a chunk that takes long to go up is not cut short by it; its sending
is bounded by httpx's write timeout (the per-request timeout). An answer past a bound is an
`httpx.TransportError` (`AnswerTooLarge`, `httpx.ReadTimeout`): an interruption like a cut
connection, retried with backoff within the attempt (a broken answer from a front end or proxy
is usually a moment's, and each try is bounded), then `PublishError("upload_unavailable",
transient=True)`; from the token endpoint, `PublishError("oauth_unreachable", transient=True)`
at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from pydantic import SecretStr

from ytmaker_shared.http import bounded_client
from ytmaker_shared.stageworker import parse_retry_after
from ytmaker_upload.domain import (
    UploadedVideo,
    VideoMetadata,
    backoff_delay,
    chunk_size,
    content_range,
    next_chunk,
    stored_bytes,
)
from ytmaker_upload.errors import PublishError

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], Awaitable[None]]
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
#: The project's daily units are spent: YouTube takes nothing more until its quota is renewed.
QUOTA_REASON = "quotaExceeded"
QUOTA_ADVICE = (
    "YouTube's daily quota for this channel's API project is used up; it is renewed at "
    "midnight Pacific time: start the run again after that"
)
#: The access token lacks a scope the method needs.
SCOPE_REASON = "insufficientPermissions"
SCOPE_ADVICE = (
    "the YouTube refresh token lacks a scope this needs (youtube.readonly, to look for the "
    "video an interrupted upload may have made): authorize it again with youtube.upload and "
    "youtube.readonly, then start the run again"
)
#: Pages of 50 of the channel's latest uploads `find_upload` looks through (one unit each
#: for the page and for its videos).
FIND_PAGES = 4
#: The longest text of an answer that goes into an error message (and so into events).
DETAIL_MAX_CHARS = 300
#: The most of an answer taken from the API or the token endpoint (JSON of a few KiB).
MAX_ANSWER_BYTES = 2**20
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")  # what an Authorization header can carry
_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def youtube_http(
    timeout_s: float,
    *,
    max_answer_bytes: int = MAX_ANSWER_BYTES,
    answer_within_s: float | None = None,
) -> httpx.AsyncClient:
    """The client for `YouTubePublisher`: httpx's timeouts of `timeout_s` (connect 10 s),
    every answer at most `max_answer_bytes`, all of it within `answer_within_s` (default
    `timeout_s`) of its request having been sent."""
    within_s = timeout_s if answer_within_s is None else answer_within_s
    return bounded_client(
        max_answer_bytes,
        within_s,
        timeout=httpx.Timeout(timeout_s, connect=10.0),
    )


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr
    token_url: str = "https://oauth2.googleapis.com/token"


@dataclass(frozen=True)
class RetryPolicy:
    """Tries per request before giving up, and the backoff between them."""

    max_tries: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 32.0


class AccessTokens:
    """Access tokens from a refresh token, cached until a minute before they expire."""

    def __init__(self, http: httpx.AsyncClient, oauth: OAuthClient) -> None:
        self.http = http
        self.oauth = oauth
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, *, refresh: bool = False) -> str:
        """A valid access token; raises PublishError (permanent for a refused grant)."""
        async with self._lock:
            if refresh or self._token is None or time.monotonic() >= self._expires_at:
                await self._refresh()
            assert self._token is not None
            return self._token

    async def _refresh(self) -> None:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.oauth.client_id,
            "client_secret": self.oauth.client_secret.get_secret_value(),
            "refresh_token": self.oauth.refresh_token.get_secret_value(),
        }
        try:
            response = await self.http.post(self.oauth.token_url, data=form)
        except httpx.TransportError as exc:
            raise PublishError("oauth_unreachable", f"token endpoint: {exc!r}", True) from exc
        if response.status_code != 200:
            transient = response.status_code in TRANSIENT_STATUSES
            body = _json(response)
            detail = body.get("error_description") or body.get("error") or response.text
            raise PublishError(
                "oauth_refused",
                f"token refresh failed ({response.status_code}): {str(detail)[:DETAIL_MAX_CHARS]}",
                transient,
            )
        body = _json(response)
        token = body.get("access_token")
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = math.nan
        if not isinstance(token, str) or not _TOKEN.fullmatch(token) or not math.isfinite(lifetime):
            raise PublishError(
                "oauth_protocol_error", "the token endpoint gave no usable access token", True
            )
        self._token = token
        self._expires_at = time.monotonic() + lifetime - 60


class YouTubePublisher:
    """Uploads one video with its thumbnail. `http` is owned by the caller (`youtube_http`
    builds the one whose answers are bounded)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        oauth: OAuthClient,
        *,
        api_base: str = "https://www.googleapis.com",
        chunk_bytes: int = 8 * 256 * 1024,
        retry: RetryPolicy = RetryPolicy(),
        watch_url: str = "https://www.youtube.com/watch?v=",
    ) -> None:
        self.http = http
        self.tokens = AccessTokens(http, oauth)
        self.api_base = api_base.rstrip("/")
        self.chunk_bytes = chunk_size(chunk_bytes)
        self.retry = retry
        self.watch_url = watch_url

    async def upload(
        self,
        video: Path,
        metadata: VideoMetadata,
        on_progress: ProgressCallback,
        *,
        session: str | None = None,
        on_session: Callable[[str], Awaitable[None]] | None = None,
        on_last_chunk: Callable[[], Awaitable[None]] | None = None,
    ) -> UploadedVideo:
        """Upload `video`; `on_progress(acknowledged_bytes, total)` after every acknowledged
        chunk. With `session` (a URI kept from an earlier, interrupted run) the upload asks
        where that session stands and resumes it; `on_session` learns a new session URI so
        that the caller can keep it, and `on_last_chunk` is awaited before the last chunk goes
        out (from then on the video may exist). Raises SessionGone, or PublishError."""
        total = (await asyncio.to_thread(video.stat)).st_size
        if total == 0:
            raise PublishError("empty_video", f"{video.name} is empty", False)
        resuming = session is not None
        if session is None:
            session = await self._initiate(total, metadata)
            if on_session is not None:
                await on_session(session)
        resource = await self._send_file(
            session, video, total, on_progress, ask_first=resuming, on_last_chunk=on_last_chunk
        )
        video_id = resource.get("id")
        if not isinstance(video_id, str) or not _VIDEO_ID.fullmatch(video_id):
            raise PublishError("protocol_error", "the upload's answer names no video id", True)
        return UploadedVideo(video_id, f"{self.watch_url}{video_id}", resource)

    async def find_upload(self, marker: str) -> UploadedVideo | None:
        """The channel's video whose tags hold `marker`, among its latest `FIND_PAGES` pages of
        uploads (newest first), or None; at most 1 + 2 × `FIND_PAGES` units of quota.
        Raises PublishError."""
        channels = await self._list("channels", {"part": "contentDetails", "mine": "true"})
        mine = next(iter(_items(channels)), None)  # mine=true names one channel at most
        playlist = _dig(mine, "contentDetails", "relatedPlaylists", "uploads")
        if not isinstance(playlist, str) or not playlist:  # an account without a channel
            return None
        params = {"part": "contentDetails", "playlistId": playlist, "maxResults": "50"}
        for _ in range(FIND_PAGES):
            page = await self._list("playlistItems", params)
            ids = [
                video_id
                for item in _items(page)
                if isinstance(video_id := _dig(item, "contentDetails", "videoId"), str)
                and _VIDEO_ID.fullmatch(video_id)
            ]
            if ids:
                videos = await self._list("videos", {"part": "snippet,status", "id": ",".join(ids)})
                for resource in _items(videos):
                    tags = _dig(resource, "snippet", "tags")
                    video_id = resource.get("id")
                    if video_id in ids and isinstance(tags, list) and marker in tags:
                        return UploadedVideo(video_id, f"{self.watch_url}{video_id}", resource)
            token = page.get("nextPageToken")
            if not isinstance(token, str) or not token:
                return None
            params["pageToken"] = token
        return None

    async def set_thumbnail(self, video_id: str, image: Path) -> dict[str, Any]:
        """`thumbnails.set` with a JPEG or PNG; raises PublishError."""
        data = await asyncio.to_thread(image.read_bytes)
        content_type = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
        url = f"{self.api_base}/upload/youtube/v3/thumbnails/set"
        response = await self._call(
            "thumbnail",
            lambda headers: self.http.post(
                url,
                params={"videoId": video_id, "uploadType": "media"},
                content=data,
                headers={**headers, "Content-Type": content_type},
            ),
        )
        return _json(response)

    async def _list(self, resource: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.api_base}/youtube/v3/{resource}"
        response = await self._call(
            f"{resource}.list",
            lambda headers: self.http.get(url, params=params, headers=headers),
        )
        return _json(response)

    # -- the resumable protocol -----------------------------------------------------------

    async def _initiate(self, total: int, metadata: VideoMetadata) -> str:
        url = f"{self.api_base}/upload/youtube/v3/videos"
        response = await self._call(
            "initiate",
            lambda headers: self.http.post(
                url,
                params={"uploadType": "resumable", "part": "snippet,status"},
                json=metadata.resource(),
                headers={
                    **headers,
                    "X-Upload-Content-Length": str(total),
                    "X-Upload-Content-Type": "video/mp4",
                },
            ),
        )
        location: str | None = response.headers.get("location")
        if not location:
            raise PublishError("protocol_error", "no Location in the session answer", True)
        session = httpx.URL(url).join(location)
        api = httpx.URL(self.api_base)
        if (session.scheme, session.host, session.port) != (api.scheme, api.host, api.port):
            raise PublishError(
                "protocol_error", "the upload session is not on the API's host", False
            )
        return str(session)

    async def _send_file(
        self,
        session: str,
        video: Path,
        total: int,
        on_progress: ProgressCallback,
        *,
        ask_first: bool = False,
        on_last_chunk: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        offset = 0
        failures = 0
        refreshed = False
        with video.open("rb") as file:
            while True:
                try:
                    if ask_first:
                        response = await self._put(session, b"", f"bytes */{total}")
                    else:
                        first, last = next_chunk(offset, total, self.chunk_bytes)
                        data = await asyncio.to_thread(_read, file, first, last - first + 1)
                        if last + 1 == total and on_last_chunk is not None:
                            await on_last_chunk()
                        response = await self._put(session, data, content_range(first, last, total))
                except httpx.TransportError as exc:
                    failures = await self._back_off(failures, f"transfer interrupted: {exc!r}")
                    ask_first = True
                    continue
                status = response.status_code
                if status in (200, 201):
                    await on_progress(total, total)
                    return _json(response)
                if status == 308:
                    try:
                        acknowledged = stored_bytes(response.headers.get("range"))
                    except ValueError:
                        acknowledged = total + 1
                    if acknowledged > total:  # not an answer about this file: ask again
                        failures = await self._back_off(failures, "308 with an odd Range")
                        ask_first = True
                        continue
                    if acknowledged > offset or not ask_first:
                        failures = 0
                    offset, ask_first = acknowledged, False
                    await on_progress(offset, total)
                    if offset >= total:  # every byte stored but no resource yet: ask again
                        failures = await self._back_off(failures, "complete but no resource")
                        ask_first = True
                    continue
                if status == 401 and not refreshed:
                    await self.tokens.get(refresh=True)
                    refreshed, ask_first = True, True
                    continue
                if status in (404, 410):
                    raise SessionGone()
                if _retryable(response):
                    failures = await self._back_off(
                        failures, f"HTTP {status}", response.headers.get("retry-after")
                    )
                    ask_first = True
                    continue
                raise _permanent("upload", response)

    async def _put(self, session: str, data: bytes, range_: str) -> httpx.Response:
        token = await self.tokens.get()
        return await self.http.put(
            session,
            content=data,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Range": range_,
                "Content-Type": "video/mp4",
            },
        )

    async def _call(
        self,
        what: str,
        send: Callable[[dict[str, str]], Awaitable[httpx.Response]],
    ) -> httpx.Response:
        """One API request with token refresh on 401 and backoff on transient failures."""
        failures = 0
        refreshed = False
        while True:
            headers = {"Authorization": f"Bearer {await self.tokens.get()}"}
            try:
                response = await send(headers)
            except httpx.TransportError as exc:
                failures = await self._back_off(failures, f"{what}: {exc!r}")
                continue
            if response.status_code < 300:
                return response
            if response.status_code == 401 and not refreshed:
                await self.tokens.get(refresh=True)
                refreshed = True
                continue
            if _retryable(response):
                failures = await self._back_off(
                    failures,
                    f"{what}: HTTP {response.status_code}",
                    response.headers.get("retry-after"),
                )
                continue
            raise _permanent(what, response)

    async def _back_off(self, failures: int, why: str, retry_after: str | None = None) -> int:
        failures += 1
        if failures >= self.retry.max_tries:
            raise PublishError("upload_unavailable", f"gave up after {failures} tries: {why}", True)
        delay = backoff_delay(failures, base=self.retry.base_delay_s, cap=self.retry.max_delay_s)
        wait = parse_retry_after(retry_after)
        if wait is not None and wait > self.retry.max_delay_s:
            raise PublishError(
                "upload_unavailable", f"asked to wait {wait:g}s: {why}", True, retry_after_s=wait
            )
        if wait is not None:
            delay = max(delay, wait)
        log.warning("YouTube request failed, retrying", extra={"why": why, "delay_s": delay})
        await asyncio.sleep(delay)
        return failures


def _read(file: BinaryIO, offset: int, length: int) -> bytes:
    file.seek(offset)
    return file.read(length)


class SessionGone(PublishError):
    """The upload session is gone (404/410): its video may exist or not (decision 0139)."""

    def __init__(self) -> None:
        super().__init__("session_expired", "the upload session is gone", True)


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of a list answer; raises PublishError for one that is no list."""
    items = body.get("items")
    if not isinstance(items, list):
        raise PublishError("protocol_error", "a list answer without items", True)
    return [item for item in items if isinstance(item, dict)]


def _dig(resource: Any, *keys: str) -> Any:
    """`resource[k1][k2]...`, or None where a level is missing or no object."""
    for key in keys:
        resource = resource.get(key) if isinstance(resource, dict) else None
    return resource


def _retryable(response: httpx.Response) -> bool:
    """429, 5xx, and the 403s YouTube uses for "too many requests" (its "Errors" reference)."""
    if response.status_code in TRANSIENT_STATUSES:
        return True
    return response.status_code == 403 and bool(_reasons(response) & RATE_LIMIT_REASONS)


def _reasons(response: httpx.Response) -> set[str]:
    error = _json(response).get("error")
    errors = error.get("errors") if isinstance(error, dict) else None
    found = errors if isinstance(errors, list) else []
    return {e["reason"] for e in found if isinstance(e, dict) and isinstance(e.get("reason"), str)}


def _permanent(what: str, response: httpx.Response) -> PublishError:
    error = _json(response).get("error")
    reasons = _reasons(response)
    if isinstance(error, dict):
        message = f"{error.get('message', '')} ({', '.join(sorted(r for r in reasons if r))})"
    else:
        message = response.text
    detail = f"{what}: HTTP {response.status_code}: {message.strip()[:DETAIL_MAX_CHARS]}"
    if QUOTA_REASON in reasons:  # decision 0012: not waited for inside an attempt
        return PublishError("youtube_quota_exceeded", f"{QUOTA_ADVICE} ({detail})", False)
    if SCOPE_REASON in reasons:
        return PublishError("youtube_scope_missing", f"{SCOPE_ADVICE} ({detail})", False)
    return PublishError("youtube_rejected", detail, False)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
