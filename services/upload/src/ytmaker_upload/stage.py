"""The upload stage: when render completed, publish the video with its thumbnail and metadata
(YouTube, or a local folder without credentials) and end the task.

It consumes `pipeline.tasks` too, only to remember each task's publishing settings (privacy,
language) from `task.requested` (`_requests/<task_id>.json` in the artifact store); the script
gives title, description and tags through render's result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ytmaker_shared.artifacts import ArtifactNotFound, ArtifactStore, InvalidKey
from ytmaker_shared.events import Artifact, Event, ProjectSettings, StageCompleted, TaskRequested
from ytmaker_shared.events.stages import MAX_STEPS
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import (
    JobContext,
    PermanentError,
    StagePolicy,
    StageResult,
    StageWork,
    TransientError,
)
from ytmaker_upload.domain import MetadataError, Privacy, metadata_from_script
from ytmaker_upload.errors import PublishError
from ytmaker_upload.publication import Publisher


class StoreJournal:
    """The YouTube upload journal (adapters/channel.py), kept in the artifact store outside
    the stage's workspace so that a new attempt finds it."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    async def load(self, task_id: str) -> dict[str, Any] | None:
        try:
            entry: dict[str, Any] = json.loads(await self.store.read(f"_uploads/{task_id}.json"))
            return entry
        except (ArtifactNotFound, ValueError):
            return None

    async def save(self, task_id: str, entry: dict[str, Any]) -> None:
        await self.store.put(f"_uploads/{task_id}.json", json.dumps(entry).encode())


class UploadWork(StageWork):
    stage = Stage.UPLOAD
    policy = StagePolicy(max_attempts=3)

    def __init__(self, store: ArtifactStore, publisher: Publisher, default_privacy: Privacy):
        self.store = store
        self.publisher = publisher
        self.default_privacy = default_privacy

    def starts(self, event: Event) -> bool:
        return isinstance(event, StageCompleted) and event.stage is Stage.RENDER

    async def admit(self, event: Event) -> bool:
        if isinstance(event, TaskRequested):
            body = {"title": event.payload.title, "settings": event.payload.settings.model_dump()}
            await self.store.put(_request_key(event.task_id), json.dumps(body).encode())
            return False
        return self.starts(event)

    async def run(self, ctx: JobContext) -> StageResult:
        trigger = ctx.event
        if not isinstance(trigger, StageCompleted):
            raise PermanentError("invalid_trigger", f"upload cannot start from {trigger.type}")
        rendered = trigger.payload.result
        video = _artifact(trigger, "video.mp4")
        thumbnail = _artifact(trigger, "thumbnail.jpg", required=False)
        settings = await self._settings(ctx.task_id)
        try:
            metadata = metadata_from_script(
                rendered,
                fallback_title=str(rendered.get("title") or ""),
                privacy=settings.privacy if settings else self.default_privacy,
                language=(settings.language if settings else None) or rendered.get("language"),
            )
        except MetadataError as exc:
            raise PermanentError("invalid_metadata", str(exc)) from exc
        video_path = await self._local(video, ctx.task_id, ctx.scratch)
        thumb_path = await self._local(thumbnail, ctx.task_id, ctx.scratch) if thumbnail else None

        async def on_progress(done: int, total: int) -> None:
            unit = -(-total // MAX_STEPS) or 1  # steps are bytes, or larger units past 2 GiB
            await ctx.progress.report(
                min(done, total) // unit,
                total // unit,
                f"{done / 2**20:.1f} of {total / 2**20:.1f} MiB acknowledged",
                current_step="upload",
            )

        await on_progress(0, video.size or 1)
        try:
            publication = await self.publisher.publish(
                ctx.task_id, video_path, thumb_path, metadata, on_progress
            )
        except PublishError as exc:
            if exc.transient:
                raise TransientError(
                    exc.code, exc.message, retry_after_s=exc.retry_after_s
                ) from exc
            raise PermanentError(exc.code, exc.message) from exc
        record = await ctx.put(
            "publication.json",
            json.dumps(publication.result() | {"metadata": metadata.as_dict()}, indent=2).encode(),
            "application/json",
        )
        result = publication.result() | {
            "source_video_uri": video.uri,
            "source_thumbnail_uri": thumbnail.uri if thumbnail else None,
            "duration_seconds": rendered.get("duration_seconds"),
            "title": metadata.title,
        }
        return StageResult(
            artifacts=(record,),
            message=f"published to {publication.platform}: {publication.url}",
            result=result,
            task_result=result,
        )

    async def _settings(self, task_id: str) -> ProjectSettings | None:
        try:
            raw = json.loads(await self.store.read(_request_key(task_id)))
            return ProjectSettings.model_validate(raw["settings"])
        except (ArtifactNotFound, ValueError, KeyError, ValidationError):
            return None

    async def _local(self, artifact: Artifact, task_id: str, scratch: Path) -> Path:
        try:
            key = self.store.task_key(artifact.uri, task_id)
            return await self.store.local_file(key, scratch, artifact.name)
        except InvalidKey as exc:
            raise PermanentError("invalid_artifact", f"{artifact.uri}: {exc}") from exc
        except ArtifactNotFound as exc:
            raise PermanentError("artifact_missing", f"{artifact.uri} is not in the store") from exc


def _request_key(task_id: str) -> str:
    return f"_requests/{task_id}.json"


def _artifact(event: StageCompleted, name: str, *, required: bool = True) -> Artifact:
    found = next((a for a in event.payload.artifacts if a.name == name), None)
    if found is None and required:
        names = [a.name for a in event.payload.artifacts]
        raise PermanentError("missing_artifact", f"render gave no {name} (got {names})")
    return found  # type: ignore[return-value]
