"""Publishing without credentials: a folder with the video, thumbnail, metadata and manifest."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlparse

from ytmaker_upload.adapters.local import LocalPublisher
from ytmaker_upload.domain import VideoMetadata

META = VideoMetadata(title="Tides", description="d", tags=("sea",), privacy="unlisted")


class Progress:
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    async def __call__(self, done: int, total: int) -> None:
        self.seen.append((done, total))


async def test_a_publication_is_a_complete_folder_with_a_manifest(tmp_path: Path) -> None:
    video = tmp_path / "in.mp4"
    video.write_bytes(os.urandom(3 * 2**20 + 7))
    thumb = tmp_path / "in.jpg"
    thumb.write_bytes(b"\xff\xd8jpeg")
    progress = Progress()
    publication = await LocalPublisher(tmp_path / "pub").publish(
        "task-1", video, thumb, META, progress
    )
    folder = tmp_path / "pub" / "task-1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "metadata.json",
        "thumbnail.jpg",
        "video.mp4",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["video"]["sha256"] == hashlib.sha256(video.read_bytes()).hexdigest()
    assert manifest["metadata"]["privacy"] == "unlisted"
    assert json.loads((folder / "metadata.json").read_text())["title"] == "Tides"
    assert Path(urlparse(publication.manifest_uri or "").path) == folder / "manifest.json"
    assert publication.url == (folder / "video.mp4").as_uri()
    assert progress.seen[-1] == (video.stat().st_size,) * 2 and len(progress.seen) == 4
    assert not [p for p in (tmp_path / "pub").iterdir() if p.name.startswith(".")]


async def test_publishing_again_is_idempotent_and_a_new_video_replaces_the_old(
    tmp_path: Path,
) -> None:
    video = tmp_path / "in.mp4"
    video.write_bytes(b"first")
    publisher = LocalPublisher(tmp_path / "pub")
    first = await publisher.publish("t", video, None, META, Progress())
    manifest = tmp_path / "pub" / "t" / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    again = await publisher.publish("t", video, None, META, Progress())
    assert again == first and manifest.stat().st_mtime_ns == stamp
    video.write_bytes(b"second")
    await publisher.publish("t", video, None, META, Progress())
    assert (tmp_path / "pub" / "t" / "video.mp4").read_bytes() == b"second"
