"""One contract for every artifact-store adapter (STYLE: one contract suite per port)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ytmaker_shared.artifacts import (
    ArtifactNotFound,
    ArtifactStore,
    FileArtifactStore,
    InvalidKey,
    MemoryArtifactStore,
    open_store,
)


@pytest.fixture(params=["file", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "file":
        yield open_store(f"file://{tmp_path / 'artifacts'}")
    elif request.param == "memory":
        yield open_store(f"memory://{uuid.uuid4().hex}")
    else:  # a real S3-compatible server (moto), reached through the environment as in production
        request.getfixturevalue("s3_env")
        bucket = request.getfixturevalue("s3_bucket")
        yield open_store(f"s3://{bucket}/deploy/artifacts")


async def test_put_reports_size_sha_and_type(store: ArtifactStore) -> None:
    data = b"hello artifact" * 1000
    stored = await store.put("t1/script/script.json", data)
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.content_type == "application/json"
    assert stored.uri == store.uri("t1/script/script.json")
    artifact = stored.artifact()
    assert artifact.name == "script.json" and artifact.size == len(data)


async def test_read_open_stat_and_uri_roundtrip(store: ArtifactStore) -> None:
    await store.put("t1/images/a.png", b"\x89PNG...", "image/png")
    assert await store.read("t1/images/a.png") == b"\x89PNG..."
    with store.open("t1/images/a.png") as f:
        assert f.read() == b"\x89PNG..."
    stat = await store.stat("t1/images/a.png")
    assert stat.size == 7 and stat.content_type == "image/png"
    uri = store.uri("t1/images/a.png")
    assert store.key(uri) == "t1/images/a.png"
    assert await store.read_uri(uri, task_id="t1") == b"\x89PNG..."


async def test_put_file(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "clip.wav"
    source.write_bytes(b"RIFF" + b"\0" * 100)
    stored = await store.put_file("t1/audio/clip.wav", source)
    assert stored.size == 104 and source.exists()
    assert await store.read("t1/audio/clip.wav") == source.read_bytes()


async def test_overwrite_replaces(store: ArtifactStore) -> None:
    await store.put("k/x.txt", b"one")
    await store.put("k/x.txt", b"two")
    assert await store.read("k/x.txt") == b"two"


async def test_missing_keys(store: ArtifactStore) -> None:
    assert not await store.exists("nope/x")
    with pytest.raises(ArtifactNotFound):
        await store.read("nope/x")
    with pytest.raises(ArtifactNotFound):
        store.open("nope/x")
    with pytest.raises(ArtifactNotFound):
        await store.stat("nope/x")
    assert await store.delete("nope/x") is False


async def test_list_delete_and_delete_prefix(store: ArtifactStore) -> None:
    for key in ("t1/images/1.png", "t1/images/2.png", "t1/audio/1.wav", "t2/images/1.png"):
        await store.put(key, b"x")
    assert await store.list("t1/images/") == ["t1/images/1.png", "t1/images/2.png"]
    assert await store.delete("t1/audio/1.wav") is True
    assert not await store.exists("t1/audio/1.wav")
    assert await store.delete_prefix("t1/") == 2
    assert await store.list("t1/") == []
    assert await store.list() == ["t2/images/1.png"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a/./b", "sp ace", "a\\b"])
async def test_bad_keys_are_refused(store: ArtifactStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        await store.put(key, b"x")


async def test_foreign_uri_is_refused(store: ArtifactStore) -> None:
    with pytest.raises(InvalidKey):
        store.key("s3://bucket/key")


def test_file_store_uri_is_a_file_uri_under_root(tmp_path: Path) -> None:
    store = FileArtifactStore(tmp_path)
    assert store.uri("a/b.mp4") == (tmp_path / "a" / "b.mp4").as_uri()
    assert store.local_path("a/b.mp4") == tmp_path / "a" / "b.mp4"
    with pytest.raises(InvalidKey):
        store.key((tmp_path.parent / "elsewhere").as_uri())


def test_open_store_by_url(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), FileArtifactStore)
    same = open_store("memory://shared-name")
    assert isinstance(same, MemoryArtifactStore) and open_store("memory://shared-name") is same
    with pytest.raises(ValueError, match="unknown artifact store"):
        open_store("ftp://host/x")


async def test_download_local_file_and_ranges(store: ArtifactStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    await store.put("t1/render/video.mp4", data)
    target = await store.download("t1/render/video.mp4", tmp_path / "dl" / "video.mp4")
    assert target.read_bytes() == data
    local = await store.local_file("t1/render/video.mp4", tmp_path / "scratch")
    assert local.read_bytes() == data
    with store.open_range("t1/render/video.mp4", 1000, 4999) as part:
        assert part.read() == data[1000:5000]
    with store.open_range("t1/render/video.mp4", len(data) - 10, len(data) - 1) as tail:
        assert tail.read() == data[-10:]
    with pytest.raises(ArtifactNotFound):
        await store.download("nope/x", tmp_path / "dl" / "x")
    with pytest.raises(ArtifactNotFound):
        store.open_range("nope/x", 0, 1)
    assert not (tmp_path / "dl" / "x").exists()


@pytest.mark.parametrize("name", ["../escaped.mp4", "a/../../escaped.mp4", "..", "", "x\x00y"])
async def test_a_local_copy_is_never_named_out_of_its_directory(
    store: ArtifactStore, tmp_path: Path, name: str
) -> None:
    """The name comes from an event (an artifact's `name`): it is a file name, not a path."""
    await store.put("t1/render/video.mp4", b"\x00\x00\x00\x18ftypmp42")
    scratch = tmp_path / "job" / "scratch"
    if store.local_path("t1/render/video.mp4") is not None:
        return  # a file store hands over its own file, whatever the name
    with pytest.raises(InvalidKey):
        await store.local_file("t1/render/video.mp4", scratch, name)
    assert not (tmp_path / "job" / "escaped.mp4").exists()
    assert not (tmp_path / "escaped.mp4").exists()


async def test_an_artifact_of_another_task_is_refused(store: ArtifactStore) -> None:
    """An event of one task names artifacts of that task only: a hostile one must not make a
    stage read (and publish) somebody else's script or video."""
    await store.put("t1/script/script.json", b"{}")
    await store.put("t2/script/script.json", b"{}")
    assert store.task_key(store.uri("t1/script/script.json"), "t1") == "t1/script/script.json"
    with pytest.raises(InvalidKey):
        store.task_key(store.uri("t2/script/script.json"), "t1")
    with pytest.raises(InvalidKey):
        store.task_key(store.uri("t1x/script/script.json"), "t1")  # a prefix is not the task
    assert await store.read_uri(store.uri("t1/script/script.json"), task_id="t1") == b"{}"
    with pytest.raises(InvalidKey):
        await store.read_uri(store.uri("t2/script/script.json"), task_id="t1")
