"""What a publication is, free of I/O: the video's metadata and the arithmetic of YouTube's
resumable protocol (YouTube Data API v3, "resumable uploads" guide).

- Metadata comes from the script (title, description, tags) and the project's settings
  (privacy, extra tags, language), cleaned to YouTube's limits: a title of 1–100 characters, a
  description of at most 5000 bytes, neither with `<` or `>`, tags of at most 500 characters in
  all (a tag with a space counts its quotes).
- A video on YouTube carries its task's marker among its tags (`upload_marker`): a digest of
  the task id, nothing secret or personal, by which a run finds a video an earlier run of the
  task made but never learnt of (decision 0139).
- Chunks are multiples of 256 KiB, except the last one.
- A 308 answer's `Range: bytes=0-N` means N+1 bytes are stored; no `Range` means none.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

CHUNK_UNIT = 256 * 1024
TITLE_MAX = 100
DESCRIPTION_MAX_BYTES = 5000
TAGS_MAX_CHARS = 500

Privacy = Literal["private", "unlisted", "public"]


@dataclass(frozen=True)
class VideoMetadata:
    title: str
    description: str = ""
    tags: tuple[str, ...] = ()
    privacy: Privacy = "private"
    category_id: str = "22"  # People & Blogs, YouTube's default for uploads
    language: str | None = None
    made_for_kids: bool = False

    def resource(self) -> dict[str, Any]:
        """The `video` resource sent when a session starts (parts snippet and status)."""
        snippet: dict[str, Any] = {
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "categoryId": self.category_id,
        }
        if self.language:
            snippet["defaultLanguage"] = self.language
            snippet["defaultAudioLanguage"] = self.language
        return {
            "snippet": snippet,
            "status": {
                "privacyStatus": self.privacy,
                "selfDeclaredMadeForKids": self.made_for_kids,
            },
        }

    def marked(self, marker: str) -> VideoMetadata:
        """With `marker` as the first tag, the others kept as the budget allows."""
        return replace(self, tags=clean_tags([marker, *self.tags]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "privacy": self.privacy,
            "category_id": self.category_id,
            "language": self.language,
        }


@dataclass(frozen=True)
class UploadedVideo:
    video_id: str
    url: str
    resource: dict[str, Any] = field(default_factory=dict)


def upload_marker(task_id: str) -> str:
    """The tag that marks a task's video: 32 hex digits of the task id's SHA-256 (a tag can
    hold neither the commas nor the length an id may have)."""
    return "ytmaker-" + hashlib.sha256(task_id.encode()).hexdigest()[:32]


class MetadataError(ValueError):
    """The script gives nothing to publish under (no usable title)."""


def metadata_from_script(
    script: Mapping[str, Any],
    *,
    fallback_title: str = "",
    privacy: Privacy = "private",
    extra_tags: Iterable[str] = (),
    language: str | None = None,
) -> VideoMetadata:
    """Build the metadata; raises MetadataError when a field has the wrong type (text, a list
    of texts for tags), or when neither the script nor the fallback has a title that survives
    cleaning."""
    fields = {name: script.get(name) or None for name in ("title", "description")}
    tags = script.get("tags") or []
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise MetadataError(f"the script's {name} is not text")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise MetadataError("the script's tags are not a list of texts")
    if language is not None and not isinstance(language, str):
        raise MetadataError("the language is not text")
    title = clean_text(fields["title"] or "") or clean_text(fallback_title)
    if not title:
        raise MetadataError("the script has no title to publish the video under")
    description = clean_text(fields["description"] or "", keep_newlines=True)
    return VideoMetadata(
        title=_truncate_chars(title, TITLE_MAX),
        description=_truncate_bytes(description, DESCRIPTION_MAX_BYTES),
        tags=clean_tags([*tags, *extra_tags]),
        privacy=privacy,
        language=language,
    )


def clean_text(text: str, *, keep_newlines: bool = False) -> str:
    """Without `<`, `>` and control characters; runs of spaces collapsed."""
    text = "".join(
        c for c in text if c not in "<>" and (c.isspace() or unicodedata.category(c) != "Cc")
    )
    if keep_newlines:
        lines = (re.sub(r"[^\S\n]+", " ", line).strip() for line in text.splitlines())
        return "\n".join(lines).strip()
    return re.sub(r"\s+", " ", text).strip()


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Unique (case-insensitively), cleaned, within YouTube's 500-character budget."""
    kept: list[str] = []
    seen: set[str] = set()
    budget = TAGS_MAX_CHARS
    for raw in tags:
        tag = clean_text(raw.replace(",", " "))[:100].strip()
        if not tag or tag.lower() in seen:
            continue
        cost = len(tag) + (2 if " " in tag else 0) + (1 if kept else 0)
        if cost > budget:
            continue
        kept.append(tag)
        seen.add(tag.lower())
        budget -= cost
    return tuple(kept)


def chunk_size(requested: int) -> int:
    """The requested size rounded down to a multiple of 256 KiB, at least one unit."""
    return max(CHUNK_UNIT, requested - requested % CHUNK_UNIT)


def next_chunk(offset: int, total: int, size: int) -> tuple[int, int]:
    """(first, last) byte of the chunk starting at `offset`; raises ValueError past the end."""
    if not 0 <= offset < total:
        raise ValueError(f"offset {offset} outside a file of {total} bytes")
    return offset, min(offset + size, total) - 1


def content_range(first: int, last: int, total: int) -> str:
    return f"bytes {first}-{last}/{total}"


def stored_bytes(range_header: str | None) -> int:
    """How many bytes the server holds, from a 308's `Range`; raises ValueError if malformed."""
    if not range_header:
        return 0
    match = re.fullmatch(r"\s*bytes=0-(\d+)\s*", range_header)
    if match is None:
        raise ValueError(f"unexpected Range header {range_header!r}")
    return int(match.group(1)) + 1


def backoff_delay(
    attempt: int, *, base: float = 1.0, cap: float = 32.0, rng: random.Random | None = None
) -> float:
    """Exponential backoff with jitter for the `attempt`-th retry (1, 2, ...): uniformly in
    [d/2, d] where d = min(cap, base·2^(attempt-1)), as Google's upload guide advises."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def _truncate_chars(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] or text[: limit - 1]
    return cut.rstrip() + "…"


def _truncate_bytes(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore").rstrip() + "…"
