"""Publishing to YouTube as one step of the upload stage: the video (resumable, resumed across
attempts and restarts), then its thumbnail.

A journal (`UploadJournal`, kept by the stage in the artifact store) remembers the session URI
as soon as YouTube gives it and the video id once uploaded: an attempt that was cut off (crash,
SIGKILL, a retry after a transient failure) asks that session where it stands and sends only
the rest, and a video that is already up is never uploaded twice. A thumbnail YouTube refuses
(e.g. a channel not allowed custom thumbnails) does not unpublish the video: it is reported in
the result as `thumbnail_error`.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any, Protocol

from ytmaker_upload.adapters.youtube import YouTubePublisher
from ytmaker_upload.domain import VideoMetadata
from ytmaker_upload.errors import PublishError
from ytmaker_upload.publication import Progress, Publication


class UploadJournal(Protocol):
    async def load(self, task_id: str) -> dict[str, Any] | None: ...

    async def save(self, task_id: str, entry: dict[str, Any]) -> None: ...


class YouTubeChannel:
    platform = "youtube"

    def __init__(self, publisher: YouTubePublisher, journal: UploadJournal) -> None:
        self.publisher = publisher
        self.journal = journal

    async def publish(
        self,
        task_id: str,
        video: Path,
        thumbnail: Path | None,
        metadata: VideoMetadata,
        on_progress: Progress,
    ) -> Publication:
        sha = await asyncio.to_thread(_sha256, video)
        entry = await self.journal.load(task_id) or {}
        if entry.get("sha256") != sha and not entry.get("video_id"):
            entry = {"sha256": sha}  # a session resumes the bytes it began with; a video is up once
        if not entry.get("video_id"):

            async def keep_session(uri: str) -> None:
                entry["session"] = uri
                await self.journal.save(task_id, entry)

            uploaded = await self.publisher.upload(
                video, metadata, on_progress, session=entry.get("session"), on_session=keep_session
            )
            entry.update(video_id=uploaded.video_id, url=uploaded.url)
            await self.journal.save(task_id, entry)
        else:
            size = (await asyncio.to_thread(video.stat)).st_size
            await on_progress(size, size)
        details: dict[str, Any] = {}
        thumbnail_uri = None
        if thumbnail is not None:
            try:
                answer = await self.publisher.set_thumbnail(entry["video_id"], thumbnail)
                thumbnail_uri = _thumbnail_url(answer)
            except PublishError as exc:
                if exc.transient:
                    raise
                details["thumbnail_error"] = exc.message
        return Publication(
            platform=self.platform,
            video_id=entry["video_id"],
            url=entry["url"],
            video_uri=entry["url"],
            thumbnail_uri=thumbnail_uri,
            details=details,
        )


def _thumbnail_url(answer: dict[str, Any]) -> str | None:
    """The largest thumbnail's URL in a `thumbnailSetResponse`, if it names one."""
    items = answer.get("items")
    sizes = items[0] if isinstance(items, list) and items else None
    for size in ("high", "default"):
        found = sizes.get(size) if isinstance(sizes, dict) else None
        url = found.get("url") if isinstance(found, dict) else None
        if isinstance(url, str) and url.startswith(("https://", "http://")) and len(url) <= 2000:
            return url
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
