"""The script artifact: what the script stage stores as `script.json` and the assets and
render stages read. Defined once, here: its writer validates it, its readers validate it the
same way."""

from __future__ import annotations

import unicodedata

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ytmaker_shared.events import StageCompleted
from ytmaker_shared.stageworker.errors import PermanentError

#: The artifact's name, in the script stage's workspace and in its `stage.completed`.
SCRIPT_ARTIFACT = "script.json"

#: Narration pace used to time segments: words per second of calm documentary speech.
WORDS_PER_SECOND = 2.5
MIN_SEGMENT_SECONDS = 3.0
MAX_SEGMENT_SECONDS = 120.0


class Segment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    index: int = Field(ge=1)
    narration: str = Field(min_length=1, max_length=5000)
    caption: str = Field(min_length=1, max_length=120)
    image_prompt: str = Field(min_length=1, max_length=1000)
    duration_seconds: float = Field(ge=MIN_SEGMENT_SECONDS, le=MAX_SEGMENT_SECONDS)

    @field_validator("narration", "caption", "image_prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("must not be blank")
        return value


class Script(BaseModel):
    """The script JSON stored as `script.json` and read by assets and render."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    title: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=5000)
    tags: list[str] = Field(default_factory=list, max_length=30)
    language: str = "en"
    segments: list[Segment] = Field(min_length=1, max_length=50)

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        out: list[str] = []
        for tag in tags:
            tag = " ".join(tag.split())[:30]
            if tag and tag.lower() not in {t.lower() for t in out}:
                out.append(tag)
        return out

    @model_validator(mode="after")
    def _numbered(self) -> Script:
        if [s.index for s in self.segments] != list(range(1, len(self.segments) + 1)):
            raise ValueError("segments must be numbered 1..n in order")
        return self

    @property
    def duration_seconds(self) -> float:
        return round(sum(s.duration_seconds for s in self.segments), 2)


def spoken(text: str) -> str:
    """`text` with its control and format characters (NUL, zero-width, bidi overrides) made
    spaces: they are neither said nor shown, and some voices refuse them."""
    return "".join(
        " " if unicodedata.category(c) in ("Cc", "Cf") and not c.isspace() else c for c in text
    )


def parse_script(data: bytes) -> Script:
    """The stored script; raises PermanentError (`invalid_script`)."""
    try:
        return Script.model_validate_json(data)
    except ValidationError as exc:
        raise PermanentError(
            "invalid_script", f"the stored script does not validate: {exc.errors()[:3]}"
        ) from exc


def script_uri(event: StageCompleted) -> str:
    """The script artifact's URI in the script stage's `stage.completed`; raises
    PermanentError (`missing_script`)."""
    for artifact in event.payload.artifacts:
        if artifact.name == SCRIPT_ARTIFACT:
            return artifact.uri
    raise PermanentError("missing_script", "the script stage completed without a script.json")
