"""What a script is, and the offline writer. Pure: no I/O.

A script is title, description, tags and segments (narration, on-screen caption, image
prompt, duration); `ytmaker_shared.script.Script` validates it, whoever wrote it (Gemini or
the offline writer).
"""

from __future__ import annotations

import re

from ytmaker_shared.events import TaskRequestedPayload
from ytmaker_shared.script import (
    MAX_SEGMENT_SECONDS,
    MIN_SEGMENT_SECONDS,
    WORDS_PER_SECOND,
    Script,
    Segment,
    spoken,
)
from ytmaker_shared.stageworker import PermanentError

#: The longest narration and image prompt a segment may carry (`Segment`'s bounds).
MAX_NARRATION_CHARS = 5000
#: Longest keyword: longer runs of letters are not words worth an image prompt.
MAX_KEYWORD_CHARS = 30


def response_schema() -> dict[str, object]:
    """The JSON schema asked of the model (Gemini's OpenAPI subset: no $defs, no bounds)."""
    segment = {
        "type": "OBJECT",
        "properties": {
            "index": {"type": "INTEGER"},
            "narration": {"type": "STRING"},
            "caption": {"type": "STRING"},
            "image_prompt": {"type": "STRING"},
            "duration_seconds": {"type": "NUMBER"},
        },
        "required": ["index", "narration", "caption", "image_prompt", "duration_seconds"],
    }
    return {
        "type": "OBJECT",
        "properties": {
            "title": {"type": "STRING"},
            "description": {"type": "STRING"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "segments": {"type": "ARRAY", "items": segment},
        },
        "required": ["title", "description", "tags", "segments"],
    }


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n{2,}")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_STOP = frozenset(
    """that this with from have were they their there which about would could should these
    those into than then them when what where while also more most some such only other over
    very just being been your will each because between through""".split()  # noqa: SIM905
)


def has_words(text: str) -> bool:
    """Is there anything to say: a letter or a digit?"""
    return any(c.isalnum() for c in text)


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, whitespace normalised, empty ones dropped."""
    parts = (" ".join(p.split()) for p in _SENTENCE_END.split(text))
    return [p for p in parts if p]


def words(text: str) -> int:
    return len(text.split())


def group_sentences(sentences: list[str], groups: int) -> list[list[str]]:
    """Split sentences into at most `groups` consecutive groups of balanced word counts."""
    groups = max(1, min(groups, len(sentences)))
    total = sum(words(s) for s in sentences)
    out: list[list[str]] = []
    current: list[str] = []
    done = 0
    for i, sentence in enumerate(sentences):
        current.append(sentence)
        done += words(sentence)
        left_sentences = len(sentences) - i - 1
        left_groups = groups - len(out) - 1
        boundary = total * (len(out) + 1) / groups
        if left_groups > 0 and (done >= boundary or left_sentences == left_groups):
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def durations(texts: list[str], target_seconds: float) -> list[float]:
    """Seconds per segment: proportional to its words, scaled towards the target length, but
    never faster than the narration can be spoken nor outside the segment bounds."""
    counts = [max(1, words(t)) for t in texts]
    spoken = [c / WORDS_PER_SECOND for c in counts]
    scale = max(1.0, target_seconds / sum(spoken))
    return [round(min(MAX_SEGMENT_SECONDS, max(MIN_SEGMENT_SECONDS, s * scale)), 2) for s in spoken]


def keywords(text: str, limit: int = 5) -> list[str]:
    """The most frequent meaningful words of `text`, first-seen order on ties."""
    counts: dict[str, int] = {}
    for word in _WORD.findall(text.lower()):
        if word not in _STOP and len(word) <= MAX_KEYWORD_CHARS:
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: -counts[w])[:limit]


def caption_for(text: str, limit: int = 80) -> str:
    first = split_sentences(text)[0] if split_sentences(text) else text
    if len(first) <= limit:
        return first
    cut = first[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def shorten(
    text: str, seconds: float = MAX_SEGMENT_SECONDS, chars: int = MAX_NARRATION_CHARS
) -> str:
    """`text` cut at a word so that it can be spoken in `seconds` and has at most `chars`
    characters (a segment's bounds); `text` itself when it fits."""
    kept = " ".join(text.split()[: int(seconds * WORDS_PER_SECOND)])
    if len(kept) > chars:
        kept = kept[: chars - 1].rsplit(" ", 1)[0][: chars - 1] + "…"
    return kept


def fit_to_length(sentences: list[str], target_seconds: float, at_least: int) -> list[str]:
    """The leading sentences that can be spoken in about `target_seconds` (at least
    `at_least` of them, when there are that many, so that every segment has one), and in
    `at_least` segments of at most `MAX_SEGMENT_SECONDS`."""
    budget = min(target_seconds, at_least * MAX_SEGMENT_SECONDS) * WORDS_PER_SECOND
    kept: list[str] = []
    spoken = 0
    for sentence in sentences:
        if kept and len(kept) >= at_least and spoken + words(sentence) > budget:
            break
        kept.append(sentence)
        spoken += words(sentence)
    return kept


def offline_script(request: TaskRequestedPayload) -> Script:
    """A deterministic script built from the real sentences of the content: the leading
    sentences that fit the target length, each segment narrating consecutive ones; the caption
    is its first sentence, shortened. Raises PermanentError (`invalid_request`) when neither
    the content nor the title has a word to say."""
    settings = request.settings
    title = " ".join(spoken(request.title).split())
    sentences = [s for s in split_sentences(spoken(request.content)) if has_words(s)]
    if not sentences and has_words(title):
        sentences = [title]
    if not sentences:
        raise PermanentError("invalid_request", "the project has no words to narrate")
    sentences = fit_to_length(sentences, settings.target_length_seconds, settings.segments)
    groups = group_sentences(sentences, settings.segments)
    texts = [shorten(" ".join(g)) for g in groups]
    times = durations(texts, settings.target_length_seconds)
    segments = []
    for i, (text, seconds) in enumerate(zip(texts, times, strict=True), start=1):
        focus = ", ".join(keywords(text, 4)) or title
        segments.append(
            Segment(
                index=i,
                narration=text,
                caption=caption_for(text),
                image_prompt=f"{settings.style} illustration of {focus}; {title}"[:1000],
                duration_seconds=seconds,
            )
        )
    tags = list(settings.tags) or keywords(request.content, 8)
    description = " ".join(sentences[:2])[:4900]
    return Script(
        title=title[:100] or segments[0].caption[:100],
        description=description,
        tags=tags,
        language=settings.language,
        segments=segments,
    )


def prompt_for(request: TaskRequestedPayload) -> str:
    """The instruction sent to the model for this project."""
    s = request.settings
    return (
        f"Write the script of a {s.target_length_seconds}-second {s.style} video in language "
        f"'{s.language}', titled {request.title!r}, in exactly {s.segments} segments numbered "
        "from 1. Each segment has the narration to be spoken, a short on-screen caption "
        "(at most 80 characters), a prompt for an illustrative image, and its duration in "
        f"seconds; durations add up to about {s.target_length_seconds}. Also give a YouTube "
        "description and up to 10 tags. Base everything only on this content:\n\n"
        f"{request.content}"
    )
