"""A local YouTube Data API v3 emulator speaking the real HTTP protocol (issue 3, upload).

What it serves, as Google documents it:

- `POST /token`: OAuth 2.0 token endpoint, `grant_type=refresh_token` with `client_id`,
  `client_secret`, `refresh_token` (form-encoded) → `{access_token, expires_in, token_type}`;
  `invalid_grant` (400) or `invalid_client` (401) otherwise.
- `POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status`: starts a
  resumable session from a JSON video resource and `X-Upload-Content-Length` /
  `X-Upload-Content-Type`; answers 200 with the session URI in `Location`.
- `PUT <session URI>` with `Content-Range: bytes a-b/total`: one chunk. Every chunk but the
  last is a multiple of 256 KiB and starts where the stored bytes end; 308 Resume Incomplete
  with `Range: bytes=0-N` until the last byte, then 201 Created with the video resource.
- `PUT <session URI>` with `Content-Range: bytes */total` and no body: where the upload stands
  (308 with `Range`, none when nothing is stored; 200 with the resource when complete).
- `POST /upload/youtube/v3/thumbnails/set?videoId=ID`: the image as the body (JPEG or PNG,
  2 MiB at most) → `youtube#thumbnailSetResponse`.
- `GET /youtube/v3/channels?part=contentDetails&mine=true` → the one channel, its uploads
  playlist in `contentDetails.relatedPlaylists.uploads`.
- `GET /youtube/v3/playlistItems?part=contentDetails&playlistId=UU…&maxResults=50` → the
  uploads, newest first, `maxResults` (0–50, default 5) a page, `nextPageToken` while more;
  a video shows there `listing_delay_s` after it was made (YouTube's listings lag).
  An unknown playlist is 404 `playlistNotFound`, a bad `pageToken` 400 `invalidPageToken`.
- `GET /youtube/v3/videos?part=snippet&id=a,b` → those of the channel's videos that exist.

A list needs `part` (400 `required`, an unknown one `unknownPart`) and exactly one filter
(none: 400 `missingRequiredParameter`; two: `incompatibleParameters`).

Every API call needs `Authorization: Bearer <token>` from the token endpoint, and the token a
scope the method accepts (the emulator grants `scopes`: youtube.upload and youtube.readonly
unless told otherwise): uploads and thumbnails take youtube.upload, the lists
youtube.readonly; `youtube` and `youtube.force-ssl` open both, and a token without one is 403
`insufficientPermissions`. Errors are Google's JSON error body
(`{"error": {"code", "message", "errors": [{reason}], "status"}}`).

Switches: `inject(kind, fault)` queues one fault for the next request of that kind
(`token`, `initiate`, `chunk`, `status`, `thumbnail`, `channels.list`, `playlistItems.list`,
`videos.list`): `Status(429 / 503 / ...)`, `Hang(seconds)` (answer late: the client times
out), `Cut(after_bytes)` (read that much of the body, keep what a server would have
persisted, i.e. whole 256 KiB units, and drop the connection), `LoseAnswer()` (do the request,
then drop the connection unanswered), `Flood(total_bytes, status)` (answer at once with a JSON
body of that many bytes, its length not declared) and `Drip(every_s, for_s, status)` (answer
at once, then the body a byte every `every_s` seconds for `for_s` seconds); neither stores
anything, and what each sent is in `streamed` (`Streamed`: bytes sent, and whether the client
took them all or hung up).
`expire_tokens()` makes every issued access token invalid (401); `expire_sessions()` forgets
every upload session (404), as YouTube does about a week after one began.

It is HTTP/1.1 on asyncio streams with h11, so it can do what a framework would not: read half a
body and cut the connection. Start it in the test's event loop (`async with YouTubeEmulator()`)
or in its own thread (`YouTubeEmulator().run_in_thread()`), or as a process:
`python tests/emulators/youtube.py --port 8085`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

from tests.emulators.base import Drip, Flood, Streamed

CHUNK_UNIT = 256 * 1024
MAX_THUMBNAIL = 2 * 1024 * 1024
MAX_REQUEST_BODY = 64 * 1024 * 1024
TOKEN_LIFETIME_S = 3599
CHANNEL_ID = "UCemulatorchannel000000"
UPLOADS_PLAYLIST = "UU" + CHANNEL_ID[2:]
SCOPE = "https://www.googleapis.com/auth/"
UPLOAD_SCOPE = SCOPE + "youtube.upload"
READONLY_SCOPE = SCOPE + "youtube.readonly"
_WRITE_SCOPES = {UPLOAD_SCOPE, SCOPE + "youtube", SCOPE + "youtube.force-ssl"}
_READ_SCOPES = {READONLY_SCOPE, SCOPE + "youtube", SCOPE + "youtube.force-ssl"}
_LISTS = {
    # kind: (filters, parts)
    "channels.list": (
        {"mine", "id", "forHandle", "forUsername", "managedByMe", "categoryId"},
        {"id", "snippet", "contentDetails", "status", "statistics"},
    ),
    "playlistItems.list": ({"playlistId", "id"}, {"id", "snippet", "contentDetails", "status"}),
    "videos.list": (
        {"id", "chart", "myRating"},
        {"id", "snippet", "contentDetails", "status", "statistics", "processingDetails"},
    ),
}
KINDS = {"token", "initiate", "chunk", "status", "thumbnail", *_LISTS}


@dataclass(frozen=True)
class Status:
    """Answer with this HTTP status (and Google's error body for it)."""

    code: int
    retry_after: int | None = None


@dataclass(frozen=True)
class Hang:
    """Read the request, then wait this long before answering."""

    seconds: float


@dataclass(frozen=True)
class Cut:
    """Read this many bytes of the body, then drop the connection without an answer."""

    after_bytes: int


@dataclass(frozen=True)
class LoseAnswer:
    """Handle the request as usual, then drop the connection instead of answering: the client
    never learns the outcome (e.g. the last chunk stored and the video created)."""


Fault = Status | Hang | Cut | LoseAnswer | Flood | Drip


_REASONS = {
    400: ("badRequest", "INVALID_ARGUMENT", "Bad Request"),
    401: ("authError", "UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("forbidden", "PERMISSION_DENIED", "Forbidden"),
    404: ("notFound", "NOT_FOUND", "Not Found"),
    413: ("mediaBodyTooLarge", "INVALID_ARGUMENT", "Media larger than the allowed size."),
    429: ("rateLimitExceeded", "RESOURCE_EXHAUSTED", "Rate Limit Exceeded"),
    500: ("backendError", "INTERNAL", "Backend Error"),
    502: ("backendError", "UNAVAILABLE", "Bad Gateway"),
    503: ("backendError", "UNAVAILABLE", "Service Unavailable"),
}


@dataclass
class UploadSession:
    upload_id: str
    total: int
    content_type: str
    resource: dict[str, Any]
    data: bytearray = field(default_factory=bytearray)
    video_id: str | None = None
    chunks: int = 0


@dataclass
class Video:
    id: str
    resource: dict[str, Any]
    data: bytes
    thumbnail: bytes | None = None
    made_at: float = field(default_factory=time.monotonic)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json; charset=UTF-8"
    streamed: Flood | Drip | None = None  # a body sent as it goes, its length not declared


class _Dropped(Exception):
    """The connection was cut on purpose (a `Cut` fault)."""


class YouTubeEmulator:
    """The emulator's state is public for assertions: `videos`, `sessions`, `requests`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str = "emulator-client",
        client_secret: str = "emulator-secret",
        refresh_token: str = "emulator-refresh-token",
        scopes: tuple[str, ...] = (UPLOAD_SCOPE, READONLY_SCOPE),
        listing_delay_s: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.scopes = scopes  # what the refresh token was granted
        self.listing_delay_s = listing_delay_s
        self.tokens: dict[str, float] = {}
        self.sessions: dict[str, UploadSession] = {}
        self.videos: dict[str, Video] = {}
        self.requests: list[tuple[str, str, int]] = []  # (kind, method, status)
        self.streamed: list[Streamed] = []  # what each Flood or Drip answer sent
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- switches -------------------------------------------------------------------------

    def inject(self, kind: str, *faults: Fault) -> None:
        """Queue faults for the next requests of `kind` (one of `KINDS`), one per request, in
        order."""
        if kind not in KINDS:
            raise ValueError(f"unknown request kind {kind!r}")
        self._faults[kind].extend(faults)

    def expire_tokens(self) -> None:
        """Every access token issued so far is now expired."""
        self.tokens.clear()

    def expire_sessions(self) -> None:
        """Every upload session so far is gone (404), as Google's are about a week after they
        began, completed or not."""
        self.sessions.clear()

    def count(self, kind: str, status: int | None = None) -> int:
        return sum(1 for k, _, s in self.requests if k == kind and status in (None, s))

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    async def start(self) -> YouTubeEmulator:
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> YouTubeEmulator:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def run_in_thread(self) -> Iterator[YouTubeEmulator]:
        """Serve from a thread of its own (for synchronous callers)."""
        started = threading.Event()
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        thread = threading.Thread(target=serve, name="youtube-emulator", daemon=True)
        thread.start()
        started.wait(10)
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    # -- HTTP/1.1 on h11 ------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while True:
                event = await self._next(conn, reader)
                if isinstance(event, h11.ConnectionClosed) or event is None:
                    return
                if not isinstance(event, h11.Request):
                    return
                response = await self._request(conn, reader, event)
                await self._send(conn, writer, response)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except _Dropped:
            writer.transport.abort()
            return
        except (h11.RemoteProtocolError, ConnectionError, asyncio.IncompleteReadError):
            writer.transport.abort()
            return
        except asyncio.CancelledError:  # the emulator is stopping: drop the connection quietly
            writer.transport.abort()
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _next(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await reader.read(65536)
            conn.receive_data(data)

    async def _send(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, response: _Response
    ) -> None:
        if response.streamed is not None:
            await self._stream(conn, writer, response.status, response.streamed)
            return
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            *response.headers,
        ]
        writer.write(conn.send(h11.Response(status_code=response.status, headers=headers)))
        writer.write(conn.send(h11.Data(data=response.body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def _stream(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, fault: Flood | Drip
    ) -> None:
        """A `Flood` or `Drip` answer: chunked (no length declared), counted as it goes out; a
        client that hangs up ends it (ConnectionError, as any dropped connection)."""
        record = Streamed()
        self.streamed.append(record)
        headers = [("content-type", "application/json; charset=UTF-8")]
        try:
            writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
            head = b'{"error": "'
            writer.write(conn.send(h11.Data(data=head)))
            await writer.drain()
            record.sent += len(head)
            if isinstance(fault, Flood):
                piece = b"x" * 65536
                while record.sent < fault.total_bytes:
                    part = piece[: fault.total_bytes - record.sent]
                    writer.write(conn.send(h11.Data(data=part)))
                    await writer.drain()
                    record.sent += len(part)
            else:
                ends = time.monotonic() + fault.for_s
                while time.monotonic() < ends:
                    await asyncio.sleep(fault.every_s)
                    writer.write(conn.send(h11.Data(data=b"x")))
                    await writer.drain()
                    record.sent += 1
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            record.whole = True
        finally:
            record.ended = True

    async def _body(
        self, conn: h11.Connection, reader: asyncio.StreamReader, cut: Cut | None
    ) -> bytes:
        body = bytearray()
        while True:
            event = await self._next(conn, reader)
            if isinstance(event, h11.Data):
                body += event.data
                if cut is not None and len(body) >= cut.after_bytes:
                    del body[cut.after_bytes :]
                    return bytes(body)
                if len(body) > MAX_REQUEST_BODY:
                    raise _Dropped()
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise _Dropped()

    async def _request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, request: h11.Request
    ) -> _Response:
        method = request.method.decode()
        url = urlsplit(request.target.decode())
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        kind = _kind(method, url.path, headers)
        fault = self._faults[kind].popleft() if kind and self._faults[kind] else None
        body = await self._body(conn, reader, fault if isinstance(fault, Cut) else None)
        if isinstance(fault, Cut):
            if kind == "chunk":
                self._persist_partial(query, headers, body)
            self.requests.append((kind or "?", method, 0))
            raise _Dropped()
        if isinstance(fault, Hang):
            await asyncio.sleep(fault.seconds)
        if isinstance(fault, Flood | Drip):
            self.requests.append((kind or "?", method, fault.status))
            return _Response(fault.status, streamed=fault)
        if isinstance(fault, Status):
            response = _error(fault.code, "injected by the emulator")
            if fault.retry_after is not None:
                response.headers.append(("retry-after", str(fault.retry_after)))
        else:
            response = self._route(kind, method, query, headers, body)
        self.requests.append((kind or "?", method, response.status))
        if isinstance(fault, LoseAnswer):
            raise _Dropped()
        return response

    # -- the API --------------------------------------------------------------------------

    def _route(
        self,
        kind: str | None,
        method: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> _Response:
        if kind == "token":
            return self._token(body)
        if kind is None:
            return _error(404, "no such endpoint")
        if not self._authorized(headers):
            return _error(401, "Request had invalid authentication credentials.")
        if not set(self.scopes) & (_READ_SCOPES if kind in _LISTS else _WRITE_SCOPES):
            return _error(
                403,
                "Request had insufficient authentication scopes.",
                reason="insufficientPermissions",
            )
        if kind in _LISTS:
            return self._list(kind, query)
        if kind == "initiate":
            return self._initiate(query, headers, body)
        if kind == "thumbnail":
            return self._thumbnail(query, headers, body)
        session = self.sessions.get(query.get("upload_id", ""))
        if session is None:
            return _error(404, "upload session not found or expired")
        if kind == "status":
            return self._status(session)
        return self._chunk(session, headers, body)

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expires = self.tokens.get(token)
        return scheme.lower() == "bearer" and expires is not None and expires > time.monotonic()

    def _token(self, body: bytes) -> _Response:
        form = {k: v[-1] for k, v in parse_qs(body.decode(errors="replace")).items()}
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("refresh_token") != self.refresh_token:
            return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        token = "ya29." + secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + TOKEN_LIFETIME_S
        return _json(
            200,
            {
                "access_token": token,
                "expires_in": TOKEN_LIFETIME_S,
                "scope": " ".join(self.scopes),
                "token_type": "Bearer",
            },
        )

    def _initiate(self, query: dict[str, str], headers: dict[str, str], body: bytes) -> _Response:
        if query.get("uploadType") != "resumable":
            return _error(400, "uploadType must be resumable")
        parts = set(query.get("part", "").split(","))
        if "snippet" not in parts:
            return _error(400, "part must include snippet", reason="invalidPart")
        try:
            resource = json.loads(body)
            total = int(headers["x-upload-content-length"])
        except (ValueError, KeyError):
            return _error(400, "a JSON video resource and X-Upload-Content-Length are required")
        content_type = headers.get("x-upload-content-type", "application/octet-stream")
        if not (content_type.startswith("video/") or content_type == "application/octet-stream"):
            return _error(400, f"cannot upload {content_type}", reason="invalidContentType")
        problem = _check_resource(resource)
        if problem:
            return _error(400, problem[1], reason=problem[0])
        upload_id = secrets.token_urlsafe(18)
        self.sessions[upload_id] = UploadSession(upload_id, total, content_type, resource)
        location = (
            f"{self.base_url}/upload/youtube/v3/videos?uploadType=resumable"
            f"&part={query['part']}&upload_id={upload_id}"
        )
        return _Response(200, b"", [("location", location)], "text/plain")

    def _status(self, session: UploadSession) -> _Response:
        if session.video_id is not None:
            return _json(200, self.videos[session.video_id].resource)
        return _incomplete(session)

    def _chunk(self, session: UploadSession, headers: dict[str, str], body: bytes) -> _Response:
        try:
            start, end, total = _content_range(headers.get("content-range", ""))
        except ValueError as exc:
            return _error(400, str(exc))
        if session.video_id is not None:
            return _json(200, self.videos[session.video_id].resource)
        if total != session.total:
            return _error(400, f"total {total} differs from X-Upload-Content-Length")
        if start != len(session.data):
            return _error(400, f"chunk starts at {start}, {len(session.data)} bytes are stored")
        if end - start + 1 != len(body):
            return _error(
                400, f"Content-Range says {end - start + 1} bytes, the body has {len(body)}"
            )
        last = end + 1 == total
        if not last and len(body) % CHUNK_UNIT:
            return _error(400, f"a chunk of {len(body)} bytes is not a multiple of 256 KiB")
        session.data += body
        session.chunks += 1
        if not last:
            return _incomplete(session)
        return _json(201, self._publish(session))

    def _persist_partial(self, query: dict[str, str], headers: dict[str, str], body: bytes) -> None:
        """A cut chunk: a server keeps the whole 256 KiB units it had received."""
        session = self.sessions.get(query.get("upload_id", ""))
        try:
            start, _, _ = _content_range(headers.get("content-range", ""))
        except ValueError:
            return
        if session is None or start != len(session.data) or not self._authorized(headers):
            return
        session.data += body[: len(body) - len(body) % CHUNK_UNIT]

    def _publish(self, session: UploadSession) -> dict[str, Any]:
        video_id = secrets.token_urlsafe(8).replace("-", "x").replace("_", "y")[:11]
        snippet = dict(session.resource.get("snippet", {}))
        status = dict(session.resource.get("status", {}))
        resource = {
            "kind": "youtube#video",
            "etag": secrets.token_hex(8),
            "id": video_id,
            "snippet": {
                **snippet,
                "publishedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "channelId": CHANNEL_ID,
            },
            "status": {
                "uploadStatus": "uploaded",
                "privacyStatus": status.get("privacyStatus", "private"),
                **{k: v for k, v in status.items() if k != "privacyStatus"},
            },
        }
        self.videos[video_id] = Video(video_id, resource, bytes(session.data))
        session.video_id = video_id
        return resource

    def _list(self, kind: str, query: dict[str, str]) -> _Response:
        filters, known = _LISTS[kind]
        if not query.get("part"):
            return _error(400, "Required parameter: part", reason="required")
        parts = set(query["part"].split(","))
        if parts - known:
            return _error(400, f"'{','.join(sorted(parts - known))}'", reason="unknownPart")
        given = filters & set(query)
        if not given:
            expected = ", ".join(sorted(filters))
            return _error(
                400,
                f"No filter selected. Expected one of: {expected}",
                reason="missingRequiredParameter",
            )
        if len(given) > 1:
            return _error(
                400,
                f"Incompatible parameters: {', '.join(sorted(given))}",
                reason="incompatibleParameters",
            )
        if kind == "channels.list":
            mine = query.get("mine") == "true" or query.get("id") == CHANNEL_ID
            return _listing("youtube#channelListResponse", [self._channel(parts)] if mine else [])
        if kind == "videos.list":
            ids = query.get("id", "").split(",")
            found = [self.videos[i] for i in ids if i in self.videos]
            return _listing("youtube#videoListResponse", [_parts(v.resource, parts) for v in found])
        return self._playlist_items(query, parts)

    def _channel(self, parts: set[str]) -> dict[str, Any]:
        return _parts(
            {
                "kind": "youtube#channel",
                "etag": secrets.token_hex(8),
                "id": CHANNEL_ID,
                "snippet": {"title": "Emulator channel", "description": ""},
                "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": UPLOADS_PLAYLIST}},
            },
            parts,
        )

    def _playlist_items(self, query: dict[str, str], parts: set[str]) -> _Response:
        if query.get("playlistId") != UPLOADS_PLAYLIST:
            return _error(
                404,
                "The playlist identified with the request's playlistId parameter cannot be found.",
                reason="playlistNotFound",
            )
        asked = query.get("maxResults", "5")
        if not asked.isdigit() or int(asked) > 50:
            return _error(400, "maxResults must be between 0 and 50.", reason="invalidParameter")
        try:
            start = _page_offset(query.get("pageToken"))
        except ValueError:
            return _error(
                400, "The request specifies an invalid page token.", reason="invalidPageToken"
            )
        size = int(asked)
        shown = time.monotonic() - self.listing_delay_s
        uploads = [v for v in reversed(self.videos.values()) if v.made_at <= shown]
        page = uploads[start : start + size]
        items = [
            _parts(self._playlist_item(video, start + n), parts) for n, video in enumerate(page)
        ]
        more = start + size < len(uploads) and size > 0
        return _listing(
            "youtube#playlistItemListResponse",
            items,
            total=len(uploads),
            per_page=size,
            next_page=_page_token(start + size) if more else None,
        )

    def _playlist_item(self, video: Video, position: int) -> dict[str, Any]:
        snippet = video.resource["snippet"]
        return {
            "kind": "youtube#playlistItem",
            "etag": secrets.token_hex(8),
            "id": base64.urlsafe_b64encode(f"{UPLOADS_PLAYLIST}.{video.id}".encode()).decode(),
            "snippet": {
                "publishedAt": snippet["publishedAt"],
                "channelId": CHANNEL_ID,
                "title": snippet["title"],
                "description": snippet.get("description", ""),
                "channelTitle": "Emulator channel",
                "playlistId": UPLOADS_PLAYLIST,
                "position": position,
                "resourceId": {"kind": "youtube#video", "videoId": video.id},
            },
            "contentDetails": {"videoId": video.id, "videoPublishedAt": snippet["publishedAt"]},
            "status": {"privacyStatus": video.resource["status"]["privacyStatus"]},
        }

    def _thumbnail(self, query: dict[str, str], headers: dict[str, str], body: bytes) -> _Response:
        video = self.videos.get(query.get("videoId", ""))
        if video is None:
            return _error(
                404,
                "The video that you are trying to update cannot be found.",
                reason="videoNotFound",
            )
        content_type = headers.get("content-type", "")
        if content_type not in {"image/jpeg", "image/png", "application/octet-stream"}:
            return _error(
                400, f"unsupported thumbnail type {content_type!r}", reason="invalidImage"
            )
        if len(body) > MAX_THUMBNAIL:
            return _error(413, "The thumbnail image file is too large.")
        if not (body.startswith(b"\xff\xd8") or body.startswith(b"\x89PNG")):
            return _error(400, "The thumbnail image is not a JPEG or PNG.", reason="invalidImage")
        video.thumbnail = body
        url = f"{self.base_url}/vi/{video.id}"
        return _json(
            200,
            {
                "kind": "youtube#thumbnailSetResponse",
                "etag": secrets.token_hex(8),
                "items": [
                    {
                        "default": {"url": f"{url}/default.jpg", "width": 120, "height": 90},
                        "medium": {"url": f"{url}/mqdefault.jpg", "width": 320, "height": 180},
                        "high": {"url": f"{url}/hqdefault.jpg", "width": 480, "height": 360},
                    }
                ],
            },
        )


def _kind(method: str, path: str, headers: dict[str, str]) -> str | None:
    if method == "POST" and path == "/token":
        return "token"
    if method == "POST" and path == "/upload/youtube/v3/videos":
        return "initiate"
    if method == "PUT" and path == "/upload/youtube/v3/videos":
        return "status" if headers.get("content-range", "").startswith("bytes */") else "chunk"
    if method == "POST" and path == "/upload/youtube/v3/thumbnails/set":
        return "thumbnail"
    if method == "GET" and path.startswith("/youtube/v3/"):
        kind = path.removeprefix("/youtube/v3/") + ".list"
        return kind if kind in _LISTS else None
    return None


def _parts(resource: dict[str, Any], parts: set[str]) -> dict[str, Any]:
    """The resource with only the parts asked for (`kind`, `etag` and `id` always)."""
    return {k: v for k, v in resource.items() if k in {"kind", "etag", "id"} or k in parts}


def _listing(
    kind: str,
    items: list[dict[str, Any]],
    *,
    total: int | None = None,
    per_page: int = 5,
    next_page: str | None = None,
) -> _Response:
    body: dict[str, Any] = {
        "kind": kind,
        "etag": secrets.token_hex(8),
        "pageInfo": {
            "totalResults": len(items) if total is None else total,
            "resultsPerPage": per_page,
        },
        "items": items,
    }
    if next_page:
        body["nextPageToken"] = next_page
    return _json(200, body)


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"page:{offset}".encode()).decode().rstrip("=")


def _page_offset(token: str | None) -> int:
    """The offset a `pageToken` stands for; raises ValueError for one the emulator never gave."""
    if token is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(token) from exc
    label, _, offset = text.partition(":")
    if label != "page" or not offset.isdigit():
        raise ValueError(token)
    return int(offset)


def _content_range(header: str) -> tuple[int, int, int]:
    """`bytes a-b/total` → (a, b, total); raises ValueError."""
    unit, _, spec = header.partition(" ")
    span, _, total = spec.partition("/")
    first, _, last = span.partition("-")
    if unit != "bytes" or not (first.isdigit() and last.isdigit() and total.isdigit()):
        raise ValueError(f"bad Content-Range {header!r}")
    a, b, t = int(first), int(last), int(total)
    if not a <= b < t:
        raise ValueError(f"bad Content-Range {header!r}")
    return a, b, t


def _check_resource(resource: Any) -> tuple[str, str] | None:
    snippet = resource.get("snippet") if isinstance(resource, dict) else None
    if not isinstance(snippet, dict):
        return "invalidVideoMetadata", "the video resource has no snippet"
    title = snippet.get("title")
    if not isinstance(title, str) or not title.strip():
        return "invalidTitle", "The request metadata specifies an invalid or empty video title."
    if len(title) > 100 or "<" in title or ">" in title:
        return "invalidTitle", "The title is longer than 100 characters or contains < or >."
    description = snippet.get("description", "")
    if len(str(description).encode()) > 5000 or "<" in description or ">" in description:
        return "invalidDescription", "The description is too long or contains < or >."
    tags = snippet.get("tags", [])
    if sum(len(t) + (2 if " " in t else 0) for t in tags) + max(0, len(tags) - 1) > 500:
        return "invalidTags", "The tags are longer than 500 characters in all."
    privacy = (resource.get("status") or {}).get("privacyStatus", "private")
    if privacy not in {"private", "unlisted", "public"}:
        return "invalidVideoMetadata", f"unknown privacyStatus {privacy!r}"
    return None


def _incomplete(session: UploadSession) -> _Response:
    headers = [("range", f"bytes=0-{len(session.data) - 1}")] if session.data else []
    return _Response(308, b"", headers, "text/plain")


def _json(status: int, body: dict[str, Any]) -> _Response:
    return _Response(status, json.dumps(body).encode())


def _error(status: int, message: str, *, reason: str | None = None) -> _Response:
    default_reason, state, _ = _REASONS.get(status, ("error", "UNKNOWN", ""))
    return _json(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [
                    {"message": message, "domain": "youtube", "reason": reason or default_reason}
                ],
                "status": state,
            }
        },
    )


def _oauth_error(status: int, error: str, description: str) -> _Response:
    return _json(status, {"error": error, "error_description": description})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    args = parser.parse_args()

    async def serve() -> None:
        emulator = await YouTubeEmulator(host=args.host, port=args.port).start()
        print(f"YouTube emulator on {emulator.base_url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
