"""Publishing to YouTube as one step of the upload stage: the video (resumable, resumed across
attempts and restarts), then its thumbnail.

A journal (`UploadJournal`, kept by the stage in the artifact store) remembers the session URI
as soon as YouTube gives it and the video id once uploaded: an attempt that was cut off (crash,
SIGKILL, a retry after a transient failure) asks that session where it stands and sends only
the rest, and a video that is already up is never uploaded twice. A thumbnail YouTube refuses
(e.g. a channel not allowed custom thumbnails) does not unpublish the video: it is reported in
the result as `thumbnail_error`.

A session that is gone (YouTube forgets one about a week after it began) may have made its
video before the answer saying so was lost. The journal notes when the last chunk went out;
from then on, before another upload starts, the video is looked for among the channel's
uploads by the task's marker tag, and used if found. Until `listing_lag_s` after the last
chunk, not finding it proves nothing (listings lag): the attempt fails as transient
`upload_unconfirmed` instead of uploading. A session whose last chunk never went out made no
video and is started over at no cost (decision 0139).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from ytmaker_upload.adapters.youtube import SessionGone, YouTubePublisher
from ytmaker_upload.domain import VideoMetadata, upload_marker
from ytmaker_upload.errors import PublishError
from ytmaker_upload.publication import Progress, Publication

log = logging.getLogger(__name__)

#: How long after its last chunk went out a video may still be missing from the channel's
#: uploads listing (decision 0139).
LISTING_LAG_S = 600.0


class UploadJournal(Protocol):
    async def load(self, task_id: str) -> dict[str, Any] | None: ...

    async def save(self, task_id: str, entry: dict[str, Any]) -> None: ...


class YouTubeChannel:
    platform = "youtube"

    def __init__(
        self,
        publisher: YouTubePublisher,
        journal: UploadJournal,
        *,
        listing_lag_s: float = LISTING_LAG_S,
    ) -> None:
        self.publisher = publisher
        self.journal = journal
        self.listing_lag_s = listing_lag_s

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
        marker = upload_marker(task_id)
        if entry.get("sha256") != sha and not entry.get("video_id"):
            # A session resumes the bytes it began with; a video is up once.
            entry = await self._made(task_id, entry, marker) or {"sha256": sha}
        # The publisher reports the bytes it sends; a video found up already has them all.
        if entry.get("video_id") or not await self._upload(
            task_id, entry, video, metadata, marker, on_progress
        ):
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

    async def _upload(
        self,
        task_id: str,
        entry: dict[str, Any],
        video: Path,
        metadata: VideoMetadata,
        marker: str,
        on_progress: Progress,
    ) -> bool:
        """Upload into `entry` (`video_id`, `url`) with `marker` among the tags, resuming its
        session; a session that is gone is started over, once, unless its video is up. False
        when that video was found instead (nothing sent)."""

        async def keep_session(uri: str) -> None:
            entry["session"] = uri
            entry.pop("last_chunk_at", None)
            await self.journal.save(task_id, entry)

        async def keep_last_chunk() -> None:
            entry["last_chunk_at"] = time.time()
            await self.journal.save(task_id, entry)

        for _ in range(2):
            try:
                uploaded = await self.publisher.upload(
                    video,
                    metadata.marked(marker),
                    on_progress,
                    session=entry.get("session"),
                    on_session=keep_session,
                    on_last_chunk=keep_last_chunk,
                )
            except SessionGone:
                if await self._made(task_id, entry, marker):
                    return False
                log.warning("upload session gone before its video was made, starting over")
                entry.pop("session", None)
                entry.pop("last_chunk_at", None)
                await self.journal.save(task_id, entry)
                continue
            entry.update(video_id=uploaded.video_id, url=uploaded.url)
            await self.journal.save(task_id, entry)
            return True
        raise PublishError("session_expired", "the upload session was gone twice", True)

    async def _made(
        self, task_id: str, entry: dict[str, Any], marker: str
    ) -> dict[str, Any] | None:
        """`entry` with the video its session made, found by `marker`; None if its last chunk
        never went out, or the video is not listed `listing_lag_s` after it did. Raises
        PublishError, transient while the listing may still lag."""
        sent_at = entry.get("last_chunk_at")
        if not isinstance(sent_at, int | float):
            return None
        found = await self.publisher.find_upload(marker)
        if found is not None:
            log.warning(
                "the video of a lost upload answer was found", extra={"video_id": found.video_id}
            )
            entry.update(video_id=found.video_id, url=found.url)
            await self.journal.save(task_id, entry)
            return entry
        wait = sent_at + self.listing_lag_s - time.time()
        if wait > 0:
            raise PublishError(
                "upload_unconfirmed",
                "the upload's last chunk went out but its video is not listed yet: "
                f"looking again in {wait:.0f}s rather than uploading it twice",
                True,
                retry_after_s=wait,
            )
        return None


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
