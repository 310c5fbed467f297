"""What only the S3 adapter does, against a real S3-compatible server (moto, tests/support/s3.py);
the behaviour every adapter shares is in test_artifacts_contract.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.support.s3 import S3Server
from ytmaker_shared.artifacts import (
    ArtifactStoreUnavailable,
    InvalidKey,
    open_store,
)
from ytmaker_shared.artifacts.s3 import S3ArtifactStore

MiB = 1 << 20


def test_uris_name_bucket_and_prefix(s3_env: dict[str, str], s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}/prod/artifacts/")
    assert isinstance(store, S3ArtifactStore)
    assert (
        store.uri("t1/render/video.mp4") == f"s3://{s3_bucket}/prod/artifacts/t1/render/video.mp4"
    )
    assert store.key(f"s3://{s3_bucket}/prod/artifacts/t1/a.png") == "t1/a.png"
    for foreign in ("s3://other/prod/artifacts/t1/a.png", f"s3://{s3_bucket}/dev/t1/a.png"):
        with pytest.raises(InvalidKey):
            store.key(foreign)
    bare = open_store(f"s3://{s3_bucket}")
    assert bare.uri("a/b") == f"s3://{s3_bucket}/a/b"


def test_bad_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="bucket"):
        open_store("s3:///no-bucket")
    with pytest.raises(ValueError, match="invalid artifact store"):
        open_store("s3://bucket/a/../b")


async def test_a_video_goes_up_in_parts_and_comes_back_whole(
    s3_server: S3Server, s3_env: dict[str, str], s3_bucket: str, tmp_path: Path
) -> None:
    store = S3ArtifactStore(s3_bucket, "artifacts", part_size=5 * MiB)
    video = tmp_path / "video.mp4"
    video.write_bytes(os.urandom(5 * MiB) * 2 + os.urandom(MiB))  # 11 MiB: three parts
    stored = await store.put_file("t1/render/video.mp4", video)
    assert stored.size == 11 * MiB
    assert stored.sha256 == hashlib.sha256(video.read_bytes()).hexdigest()
    assert stored.content_type == "video/mp4"
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="artifacts/t1/render/video.mp4")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # a completed multipart upload
    assert head["Metadata"]["sha256"] == stored.sha256
    assert await store.stat("t1/render/video.mp4") == stored
    copy = await store.download("t1/render/video.mp4", tmp_path / "copy.mp4")
    assert copy.read_bytes() == video.read_bytes()
    with store.open_range("t1/render/video.mp4", 5 * MiB - 2, 5 * MiB + 1) as part:
        assert part.read() == video.read_bytes()[5 * MiB - 2 : 5 * MiB + 2]


async def test_an_object_written_by_another_tool_gets_its_sha256(
    s3_server: S3Server, s3_env: dict[str, str], s3_bucket: str
) -> None:
    s3_server.client().put_object(Bucket=s3_bucket, Key="p/t1/x.json", Body=b"{}")
    stat = await open_store(f"s3://{s3_bucket}/p").stat("t1/x.json")
    assert stat.sha256 == hashlib.sha256(b"{}").hexdigest() and stat.size == 2


async def test_an_unreachable_store_is_unavailable_not_missing(
    s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens
    store = open_store("s3://bucket/prefix")
    assert isinstance(store, S3ArtifactStore)
    store.client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(ArtifactStoreUnavailable) as caught:
        await store.read("t1/x")
    assert "secret" not in str(caught.value).lower() and "testing" not in str(caught.value)
    with pytest.raises(ArtifactStoreUnavailable):
        await store.put("t1/x", b"x")


async def test_a_missing_bucket_is_unavailable(s3_env: dict[str, str]) -> None:
    store = open_store("s3://no-such-bucket-ytmaker/prefix")
    with pytest.raises(ArtifactStoreUnavailable):
        await store.put("t1/x", b"x")
    with pytest.raises(ArtifactStoreUnavailable):
        await store.read("t1/x")
