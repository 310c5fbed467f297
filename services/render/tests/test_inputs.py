"""Matching asset files to script segments."""

from __future__ import annotations

from ytmaker_render.inputs import IMAGE_SUFFIXES, avatar_clips, by_segment, number_in
from ytmaker_shared.events import Artifact


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
