"""Matching asset files to script segments."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from ytmaker_render.inputs import (
    IMAGE_SUFFIXES,
    avatar_clips,
    by_segment,
    load_inputs,
    number_in,
    wav_seconds,
)
from ytmaker_render.join import AssetOutcome, JoinState
from ytmaker_shared.artifacts import MemoryArtifactStore
from ytmaker_shared.events import Artifact
from ytmaker_shared.stages import Stage


def art(name: str) -> Artifact:
    return Artifact(name=name, uri=f"memory://x/{name}", size=1, sha256="0" * 64)


def test_numbers_in_names_map_to_segments_counting_from_one_or_zero() -> None:
    assert number_in("segment-07.png") == 7 and number_in("cover.png") is None
    one_based = by_segment([art("segment-02.png"), art("segment-01.png")], IMAGE_SUFFIXES, [1, 2])
    assert {i: a.name for i, a in one_based.items()} == {1: "segment-01.png", 2: "segment-02.png"}
    zero_based = by_segment([art("img0.png"), art("img1.png")], IMAGE_SUFFIXES, [1, 2])
    assert {i: a.name for i, a in zero_based.items()} == {1: "img0.png", 2: "img1.png"}


def test_other_file_types_are_ignored_and_unnumbered_files_go_in_name_order() -> None:
    files = [art("b.png"), art("a.png"), art("notes.json")]
    assert {i: a.name for i, a in by_segment(files, IMAGE_SUFFIXES, [1, 2]).items()} == {
        1: "a.png",
        2: "b.png",
    }


def test_avatars_are_per_segment_when_there_is_one_each_else_one_clip() -> None:
    per_segment = avatar_clips([art("avatar-01.mp4"), art("avatar-02.mp4")], [1, 2])
    assert [(a.name, i) for a, i in per_segment] == [("avatar-01.mp4", 1), ("avatar-02.mp4", 2)]
    single = avatar_clips([art("presenter.mp4"), art("placeholder.json")], [1, 2])
    assert [(a.name, i) for a, i in single] == [("presenter.mp4", None)]
    assert avatar_clips([art("status.json")], [1]) == []


async def test_an_asset_named_like_a_path_stays_in_the_scratch_folder(tmp_path: Path) -> None:
    store = MemoryArtifactStore(uuid.uuid4().hex)
    script = {
        "title": "T",
        "description": "D",
        "segments": [
            {
                "index": 1,
                "narration": "n",
                "caption": "c",
                "image_prompt": "p",
                "duration_seconds": 3,
            }
        ],
    }
    await store.put("t1/script/script.json", json.dumps(script).encode())
    image = await store.put("t1/images/segment-01.png", b"png")
    clip = await store.put("t1/avatars/presenter.mp4", b"mp4")
    hostile = "x/../../../../escaped.mp4"
    join = JoinState(
        task_id="t1",
        done={
            Stage.IMAGES: AssetOutcome(
                event_id="e1", status="completed", artifacts=(image.artifact(),)
            ),
            Stage.AUDIO: AssetOutcome(event_id="e2", status="completed"),
            Stage.AVATARS: AssetOutcome(
                event_id="e3", status="completed", artifacts=(clip.artifact(hostile),)
            ),
        },
    )
    scratch = tmp_path / "deep" / "er" / "scratch"
    scratch.mkdir(parents=True)
    inputs = await load_inputs(store, join, scratch)
    [(avatar, _)] = inputs.avatars
    assert avatar.resolve().is_relative_to(scratch.resolve())
    assert avatar.read_bytes() == b"mp4"
    assert not await asyncio.to_thread(lambda: list(tmp_path.rglob("escaped.mp4")))


def test_a_wav_header_claiming_more_than_the_file_holds_is_not_believed(
    tmp_path: Path, media: Any
) -> None:
    path = media.tone(tmp_path / "n.wav", 1.0, rate=8000)
    assert wav_seconds(path) == pytest.approx(1.0)
    data = bytearray(path.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = (0x7FFFFF00).to_bytes(4, "little")  # about 37 hours at 8 kHz
    data[4:8] = (0x7FFFFF00 + 36).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert wav_seconds(path) == pytest.approx(1.0)
