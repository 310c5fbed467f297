"""Finding a task's artifact by its public name (`video`, `thumbnail`, `script`) in the
task's state. Pure.

Stages report artifacts as `{name, uri, size, sha256, content_type}` (ytmaker_shared.events
.Artifact) and a finished task's `result` carries them; this module does not depend on the
exact nesting: it looks for artifact objects (anything with a `uri`) whose `name` or key is
the wanted name, with or without a file extension, and for plain `<name>_uri` strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PUBLIC_NAMES = frozenset({"video", "thumbnail", "script"})
_ALIASES = {"video": ("video", "mp4"), "thumbnail": ("thumbnail", "thumb"), "script": ("script",)}


@dataclass(frozen=True)
class Found:
    uri: str
    content_type: str | None


def _stem(name: str) -> str:
    return name.rsplit("/", 1)[-1].split(".", 1)[0].lower()


def _candidates(value: Any, key: str = "") -> Iterator[tuple[str, Found]]:
    if isinstance(value, dict):
        uri = value.get("uri")
        if isinstance(uri, str):
            name = value.get("name") if isinstance(value.get("name"), str) else key
            yield _stem(str(name or key)), Found(uri, value.get("content_type"))
            yield _stem(key), Found(uri, value.get("content_type"))
        for k, v in value.items():
            if isinstance(v, str) and k.endswith("_uri"):
                yield _stem(k[: -len("_uri")]), Found(v, None)
            elif isinstance(v, dict | list | tuple):
                yield from _candidates(v, str(k))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _candidates(item, key)


def find_artifact(state: dict[str, Any], name: str) -> Found | None:
    """The artifact `name` of a task state (its `result` first, then anything else)."""
    if name not in PUBLIC_NAMES:
        return None
    wanted = _ALIASES[name]
    for source in (state.get("result"), state):
        for stem, found in _candidates(source):
            if stem in wanted or stem.startswith(f"{name}-") or stem.startswith(f"{name}_"):
                return found
    return None
