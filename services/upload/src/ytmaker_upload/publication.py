"""The port every publisher implements, and what a publication is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ytmaker_upload.domain import VideoMetadata

#: `(bytes_done, bytes_total)` after every acknowledged piece of the video.
Progress = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True)
class Publication:
    platform: str
    video_id: str
    url: str
    video_uri: str
    thumbnail_uri: str | None = None
    manifest_uri: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def result(self) -> dict[str, Any]:
        """The `result` of `stage.completed` and `task.completed`."""
        out: dict[str, Any] = {
            "platform": self.platform,
            "video_id": self.video_id,
            "published_url": self.url,
            "video_uri": self.video_uri,
            "thumbnail_uri": self.thumbnail_uri,
        }
        if self.manifest_uri:
            out["manifest_uri"] = self.manifest_uri
        return out | self.details


class Publisher(Protocol):
    platform: str

    async def publish(
        self,
        task_id: str,
        video: Path,
        thumbnail: Path | None,
        metadata: VideoMetadata,
        on_progress: Progress,
    ) -> Publication:
        """Publish; raise `PublishError`. Must end promptly when the calling task is
        cancelled, leaving nothing half-published under its final name."""
        ...
