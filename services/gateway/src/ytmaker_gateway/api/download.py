"""Serving an artifact: one that is not a file on this machine (an `s3://` store) streamed from
the store in chunks, never whole in memory; a file store's as a `FileResponse`. Both with single
HTTP range requests (RFC 9110 §14) so that a video player can seek, by the same rules
(`byte_range`): a range past the end is 416 with `ErrorBody` and `Content-Range: bytes */<size>`,
a malformed one or several are ignored (the whole file), never starlette's own answers (a
plain-text 400, an empty 416, a multipart 206)."""

from __future__ import annotations

import asyncio
import os
import re
import stat as stat_mode
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ytmaker_shared.artifacts import ArtifactNotFound, ArtifactStore

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
#: Digits past which a position is beyond any object (and past Python's int conversion limit,
#: whose ValueError was a 500): taken as that, never converted.
_MAX_DIGITS = 19


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


class RangeNotSatisfiable(ValueError):
    """A range that starts beyond the object (answered with 416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) that a `Range` header asks for within `size` bytes; None to
    send the whole object (no header, several ranges or a malformed one: RFC 9110 lets a server
    ignore those). Raises RangeNotSatisfiable for a range that starts past the end."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = _position(last)
        if length == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - length), size - 1
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if start >= size or (last and _position(last) < start):
        raise RangeNotSatisfiable(header)
    return start, end


def _not_satisfiable(size: int) -> Response:
    return JSONResponse(
        {
            "error": {
                "code": "range_not_satisfiable",
                "message": f"the artifact has {size} bytes",
                "details": {},
            }
        },
        status_code=416,
        headers={"Content-Range": f"bytes */{size}"},
    )


class _FileRange(FileResponse):
    """A `FileResponse` that sends the inclusive `wanted` range (None: the whole file)
    whatever `Range` the request had: starlette's own reading of it is never used."""

    def __init__(
        self,
        path: Path,
        wanted: tuple[int, int] | None,
        found: os.stat_result,
        media_type: str | None,
    ) -> None:
        super().__init__(
            path,
            media_type=media_type,
            headers={"Cache-Control": "private, max-age=3600"},
            stat_result=found,
        )
        self.wanted = wanted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"range"]
        if self.wanted is not None:
            start, end = self.wanted
            headers.append((b"range", f"bytes={start}-{end}".encode("latin-1")))
        await super().__call__({**scope, "headers": headers}, receive, send)


async def send_file(path: Path, content_type: str | None, range_header: str | None) -> Response:
    """The file store's artifact at `path` as a 200 or 206 `FileResponse` (416 for a range
    past its end), by the same rules as `stream_artifact`. Raises ArtifactNotFound when it is
    not a regular file (any more)."""
    try:
        found = await asyncio.to_thread(os.stat, path)
    except (FileNotFoundError, NotADirectoryError):
        raise ArtifactNotFound(str(path)) from None
    if not stat_mode.S_ISREG(found.st_mode):
        raise ArtifactNotFound(str(path))
    try:
        wanted = byte_range(range_header, found.st_size)
    except RangeNotSatisfiable:
        return _not_satisfiable(found.st_size)
    return _FileRange(path, wanted if found.st_size else None, found, content_type)


async def _chunks(store: ArtifactStore, key: str, start: int, end: int) -> AsyncIterator[bytes]:
    source = await asyncio.to_thread(store.open_range, key, start, end)
    try:
        while chunk := await asyncio.to_thread(source.read, CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(source.close)


async def stream_artifact(
    store: ArtifactStore, key: str, content_type: str | None, range_header: str | None
) -> Response:
    """The object under `key` as a 200 or 206 streaming response (416 for a range past its
    end). Raises ArtifactNotFound / ArtifactStoreUnavailable from the store's `stat`."""
    stat = await store.stat(key)
    media_type = content_type or stat.content_type
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    try:
        wanted = byte_range(range_header, stat.size)
    except RangeNotSatisfiable:
        return _not_satisfiable(stat.size)
    if stat.size == 0:
        return Response(b"", media_type=media_type, headers=headers)
    start, end = wanted or (0, stat.size - 1)
    headers["Content-Length"] = str(end - start + 1)
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{stat.size}"
    return StreamingResponse(
        _chunks(store, key, start, end), status_code=status, media_type=media_type, headers=headers
    )
