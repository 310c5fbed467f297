"""What render works from: the script and the asset artifacts of a task, matched to segments.

Pure helpers (`by_segment`, `avatar_clips`) decide which file belongs to which segment; the
loader (`load_inputs`) fetches the script JSON and makes every file a local path for ffmpeg.

Artifacts are matched to segments by the number in their name (`segment-03.png`, `03.wav`),
counting from 1 as the script does (or from 0 when the numbers start at 0); files without a
number are taken in name order.
"""

from __future__ import annotations

import re
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ytmaker_render.join import JoinState
from ytmaker_shared.artifacts import ArtifactNotFound, ArtifactStore, InvalidKey
from ytmaker_shared.events import Artifact
from ytmaker_shared.script import SCRIPT_ARTIFACT, Script, parse_script
from ytmaker_shared.stages import Stage
from ytmaker_shared.stageworker import PermanentError, TransientError, workspace_prefix

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
AUDIO_SUFFIXES = (".wav",)
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv")


@dataclass(frozen=True)
class SegmentFiles:
    index: int
    caption: str
    narration_text: str
    script_seconds: float
    image: Path
    narration: Path | None
    narration_seconds: float | None


@dataclass(frozen=True)
class RenderInputs:
    script: Script
    script_uri: str
    segments: tuple[SegmentFiles, ...]
    avatars: tuple[tuple[Path, int | None], ...]  # (clip, segment index or None for whole video)


def number_in(name: str) -> int | None:
    """The last number in a file name, or None."""
    found = re.findall(r"\d+", Path(name).stem)
    return int(found[-1]) if found else None


def by_segment(
    artifacts: Iterable[Artifact], suffixes: Sequence[str], indexes: Sequence[int]
) -> dict[int, Artifact]:
    """Map the artifacts with one of `suffixes` to the script's segment indexes."""
    files = sorted(
        (a for a in artifacts if a.name.lower().endswith(tuple(suffixes))), key=lambda a: a.name
    )
    numbers = [number_in(a.name) for a in files]
    if files and all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
        known = [n for n in numbers if n is not None]
        shift = indexes[0] - min(known) if min(known) in (0, 1) else 0
        mapped = {n + shift: a for n, a in zip(known, files, strict=True)}
        return {i: mapped[i] for i in indexes if i in mapped}
    return dict(zip(indexes, files, strict=False))


def avatar_clips(
    artifacts: Iterable[Artifact], indexes: Sequence[int]
) -> list[tuple[Artifact, int | None]]:
    """Per-segment clips when there is one per segment, else each clip from the start."""
    clips = [a for a in artifacts if a.name.lower().endswith(VIDEO_SUFFIXES)]
    if len(clips) == len(indexes) and len(indexes) > 1:
        return [(a, i) for i, a in by_segment(clips, VIDEO_SUFFIXES, indexes).items()]
    return [(a, None) for a in clips[:1]]


def wav_seconds(path: Path) -> float | None:
    """The duration of a WAV file: the frames it holds (a header may claim more); None when
    it cannot be read."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            frames = 0
            while block := wav.readframes(1 << 16):
                frames += len(block) // (wav.getsampwidth() * wav.getnchannels())
            return frames / rate if rate else None
    except (wave.Error, EOFError, OSError):
        return None


async def local_file(
    store: ArtifactStore, uri: str, task_id: str, scratch: Path, name: str
) -> Path:
    """A local path holding `task_id`'s artifact at `uri` (the store's own file when it has
    one); an artifact of another task is invalid."""
    try:
        return await store.local_file(store.task_key(uri, task_id), scratch / "inputs", name)
    except InvalidKey as exc:
        raise PermanentError("invalid_artifact", f"cannot read {uri}: {exc}") from exc
    except ArtifactNotFound as exc:
        raise TransientError("artifact_missing", f"{uri} is not (yet) in the store") from exc


async def load_script(store: ArtifactStore, task_id: str) -> tuple[Script, str]:
    key = workspace_prefix(task_id, Stage.SCRIPT) + SCRIPT_ARTIFACT
    try:
        raw = await store.read(key)
    except ArtifactNotFound as exc:
        raise TransientError("script_missing", f"no script at {key}") from exc
    return parse_script(raw), store.uri(key)


async def load_inputs(store: ArtifactStore, join: JoinState, scratch: Path) -> RenderInputs:
    """Everything render needs as local files. Raises PermanentError when an asset is missing
    for a segment, TransientError when the store does not have a file yet."""
    script, script_uri = await load_script(store, join.task_id)
    indexes = [s.index for s in script.segments]
    images = by_segment(join.done[Stage.IMAGES].artifacts, IMAGE_SUFFIXES, indexes)
    narrations = by_segment(join.done[Stage.AUDIO].artifacts, AUDIO_SUFFIXES, indexes)
    lacking = [i for i in indexes if i not in images]
    if lacking:
        raise PermanentError("missing_images", f"no image for segments {lacking}")
    segments = []
    for segment in script.segments:
        image = await local_file(
            store, images[segment.index].uri, join.task_id, scratch, f"img{segment.index}"
        )
        narration = None
        seconds = None
        if segment.index in narrations:
            narration = await local_file(
                store, narrations[segment.index].uri, join.task_id, scratch, f"n{segment.index}.wav"
            )
            seconds = wav_seconds(narration)
        segments.append(
            SegmentFiles(
                index=segment.index,
                caption=segment.caption,
                narration_text=segment.narration or segment.caption,
                script_seconds=segment.duration_seconds,
                image=image,
                narration=narration,
                narration_seconds=seconds,
            )
        )
    avatars = []
    outcome = join.done[Stage.AVATARS]
    if outcome.status != "skipped":
        for number, (artifact, index) in enumerate(avatar_clips(outcome.artifacts, indexes)):
            name = f"avatar-{number}{Path(artifact.name).suffix.lower()}"  # never a path
            path = await local_file(store, artifact.uri, join.task_id, scratch, name)
            avatars.append((path, index))
    return RenderInputs(script, script_uri, tuple(segments), tuple(avatars))
