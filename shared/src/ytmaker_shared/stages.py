"""The pipeline's stages, their services and their weight in overall progress."""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType


class Stage(StrEnum):
    SCRIPT = "script"
    IMAGES = "images"
    AUDIO = "audio"
    AVATARS = "avatars"
    RENDER = "render"
    UPLOAD = "upload"


#: Weight of each stage in the overall progress; they sum to 100.
STAGE_WEIGHTS: MappingProxyType[Stage, int] = MappingProxyType(
    {
        Stage.SCRIPT: 20,
        Stage.IMAGES: 25,
        Stage.AUDIO: 10,
        Stage.AVATARS: 10,
        Stage.RENDER: 25,
        Stage.UPLOAD: 10,
    }
)

#: The stages that run in parallel once the script is done; render waits for all of them.
ASSET_STAGES: frozenset[Stage] = frozenset({Stage.IMAGES, Stage.AUDIO, Stage.AVATARS})

#: The stages whose completion each stage starts from (the pipeline's shape).
STAGE_INPUTS: MappingProxyType[Stage, frozenset[Stage]] = MappingProxyType(
    {
        Stage.SCRIPT: frozenset(),
        Stage.IMAGES: frozenset({Stage.SCRIPT}),
        Stage.AUDIO: frozenset({Stage.SCRIPT}),
        Stage.AVATARS: frozenset({Stage.SCRIPT}),
        Stage.RENDER: ASSET_STAGES,
        Stage.UPLOAD: frozenset({Stage.RENDER}),
    }
)

#: The service that runs each stage.
STAGE_SERVICE: MappingProxyType[Stage, str] = MappingProxyType(
    {
        Stage.SCRIPT: "script",
        Stage.IMAGES: "assets",
        Stage.AUDIO: "assets",
        Stage.AVATARS: "assets",
        Stage.RENDER: "render",
        Stage.UPLOAD: "upload",
    }
)

assert sum(STAGE_WEIGHTS.values()) == 100
