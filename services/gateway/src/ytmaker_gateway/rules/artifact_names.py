"""Finding a task's artifact by its public name (`video`, `thumbnail`, `script`). Pure.

A finished task's `result` names its files: the upload stage writes `source_video_uri` and
`source_thumbnail_uri` (in the artifact store) next to `video_uri` / `thumbnail_uri` (where it
was published); artifact objects (`{name, uri, ...}`, ytmaker_shared.events.Artifact) may appear
too. `candidates` lists every URI that may hold the artifact, the artifact store's first; then
the stages' well-known keys (`<task_id>/<stage>/<file>`, ytmaker_shared.stageworker), which is
how the script is found, and the video of a task that has rendered but not yet published.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PUBLIC_NAMES = frozenset({"video", "thumbnail", "script"})
_STEMS = {
    "video": ("source_video", "video"),
    "thumbnail": ("source_thumbnail", "thumbnail"),
    "script": ("script",),
}
#: The keys the stages write (render: video.mp4, thumbnail.jpg; script: script.json).
WELL_KNOWN_KEYS = {
    "video": "render/video.mp4",
    "thumbnail": "render/thumbnail.jpg",
    "script": "script/script.json",
}
_TYPES = {"video": "video/mp4", "thumbnail": "image/jpeg", "script": "application/json"}


@dataclass(frozen=True)
class Found:
    uri: str | None
    key: str | None
    content_type: str | None


def _stem(name: str) -> str:
    return name.rsplit("/", 1)[-1].split(".", 1)[0].lower()


def _uris(value: Any, key: str = "") -> Iterator[tuple[str, str, str | None]]:
    """(stem, uri, content type) of everything in `value` that names a file."""
    if isinstance(value, dict):
        uri = value.get("uri")
        if isinstance(uri, str):
            name = value.get("name")
            yield _stem(name if isinstance(name, str) else key), uri, value.get("content_type")
        for k, v in value.items():
            if isinstance(v, str) and k.endswith("_uri"):
                yield _stem(k[: -len("_uri")]), v, None
            elif isinstance(v, dict | list | tuple):
                yield from _uris(v, str(k))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _uris(item, key)


def candidates(task_id: str, state: dict[str, Any], name: str) -> list[Found]:
    """Where artifact `name` of a task may be, best first; empty for an unknown name."""
    if name not in PUBLIC_NAMES:
        return []
    found = list(_uris(state.get("result")))
    ordered = [
        Found(uri, None, ctype or _TYPES[name])
        for stem in _STEMS[name]
        for s, uri, ctype in found
        if s == stem
    ]
    ordered.append(Found(None, f"{task_id}/{WELL_KNOWN_KEYS[name]}", _TYPES[name]))
    return ordered
