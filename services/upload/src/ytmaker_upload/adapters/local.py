"""Publishing without credentials: the video, its thumbnail and its metadata JSON are copied
into `<publish_dir>/<task_id>/` with a `manifest.json`.

The copy goes to a hidden temporary folder first and is renamed into place at the end, so a
cancelled or crashed publication leaves no half-published folder; publishing the same video
again for the same task finds it already there and returns it (idempotent).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ytmaker_upload.domain import VideoMetadata
from ytmaker_upload.errors import PublishError
from ytmaker_upload.publication import Progress, Publication

_CHUNK = 1 << 20
MANIFEST = "manifest.json"


class LocalPublisher:
    platform = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    async def publish(
        self,
        task_id: str,
        video: Path,
        thumbnail: Path | None,
        metadata: VideoMetadata,
        on_progress: Progress,
    ) -> Publication:
        final = self.root / task_id
        total = (await asyncio.to_thread(video.stat)).st_size
        existing = await asyncio.to_thread(_read_manifest, final)
        video_sha = await asyncio.to_thread(_sha256, video)
        if existing is not None and existing["video"]["sha256"] == video_sha:
            await on_progress(total, total)
            return _publication(final, existing)
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        staging = Path(
            await asyncio.to_thread(tempfile.mkdtemp, prefix=f".{task_id}-", dir=self.root)
        )
        try:
            files = {"video": await _copy(video, staging / "video.mp4", total, on_progress)}
            if thumbnail is not None:
                files["thumbnail"] = await _copy(thumbnail, staging / "thumbnail.jpg", None, None)
            meta = json.dumps(metadata.as_dict(), indent=2, ensure_ascii=False).encode()
            await asyncio.to_thread((staging / "metadata.json").write_bytes, meta)
            files["metadata"] = {
                "file": "metadata.json",
                "size": len(meta),
                "sha256": hashlib.sha256(meta).hexdigest(),
            }
            manifest = {
                "task_id": task_id,
                "platform": self.platform,
                "published_at": datetime.now(UTC).isoformat(),
                "url": (final / "video.mp4").as_uri(),
                "files": files,
                "video": files["video"],
                "metadata": metadata.as_dict(),
            }
            await asyncio.to_thread(
                (staging / MANIFEST).write_text, json.dumps(manifest, indent=2, ensure_ascii=False)
            )
            await asyncio.to_thread(_replace_dir, staging, final)
        except OSError as exc:
            raise PublishError("publish_dir_unwritable", f"{self.root}: {exc}", True) from exc
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        return _publication(final, manifest)


async def _copy(
    source: Path, target: Path, total: int | None, on_progress: Progress | None
) -> dict[str, Any]:
    digest = hashlib.sha256()
    done = 0
    with source.open("rb") as src, target.open("wb") as out:
        while chunk := await asyncio.to_thread(src.read, _CHUNK):
            digest.update(chunk)
            await asyncio.to_thread(out.write, chunk)
            done += len(chunk)
            if on_progress is not None and total:
                await on_progress(done, total)
        await asyncio.to_thread(out.flush)
        await asyncio.to_thread(os.fsync, out.fileno())
    return {"file": target.name, "size": done, "sha256": digest.hexdigest()}


def _replace_dir(staging: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".{final.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(final)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
        return manifest
    except (OSError, ValueError):
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _publication(folder: Path, manifest: dict[str, Any]) -> Publication:
    files = manifest["files"]
    return Publication(
        platform="local",
        video_id=manifest["task_id"],
        url=manifest["url"],
        video_uri=(folder / files["video"]["file"]).as_uri(),
        thumbnail_uri=(folder / files["thumbnail"]["file"]).as_uri()
        if "thumbnail" in files
        else None,
        manifest_uri=(folder / MANIFEST).as_uri(),
    )
