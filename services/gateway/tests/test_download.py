"""Artifacts of a remote store (s3://) streamed by the gateway with ranges: the range rules
(pure) and the endpoint against a real S3-compatible server (moto)."""

from __future__ import annotations

import json
import os

import pytest

from tests.support.gateway import make_state, stable_id
from ytmaker_gateway.api.download import RangeNotSatisfiable, byte_range
from ytmaker_shared.progress import TaskStatus

from .conftest import Factory, Harness

T1 = stable_id("t1")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=900-5000", (900, 999)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole object
        ("items=0-1", None),
        ("bytes=x-y", None),
        ("bytes=-", None),
    ],
)
def test_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-1001", "bytes=-0", "bytes=9-3"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 1000)


async def test_video_streams_from_s3_with_ranges(
    gateway_factory: Factory, s3_env: dict[str, str], s3_bucket: str
) -> None:
    gw = await gateway_factory(artifact_url=f"s3://{s3_bucket}/artifacts")
    store = gw.gateway.artifacts
    assert store.scheme == "s3" and store.local_path(f"{T1}/render/video.mp4") is None
    video = os.urandom(3 * 1024 * 1024 + 17)
    stored = await store.put(f"{T1}/render/video.mp4", video, "video/mp4")
    assert stored.uri.startswith(f"s3://{s3_bucket}/artifacts/")
    await store.put(f"{T1}/script/script.json", b'{"segments": []}')
    result = {"source_video_uri": stored.uri}
    gw.fake.put_task(make_state(T1, status=TaskStatus.COMPLETED, result=result))

    full = await gw.http.get(f"/api/v1/artifacts/{T1}/video", headers=gw.auth("alice"))
    assert full.status_code == 200 and full.content == video
    assert full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    assert int(full.headers["content-length"]) == len(video)

    seek = {"Range": f"bytes=1048576-{1048576 + 300_000}"}
    part = await gw.http.get(f"/api/v1/artifacts/{T1}/video", headers=gw.auth("alice") | seek)
    assert part.status_code == 206 and part.content == video[1048576 : 1048576 + 300_001]
    assert part.headers["content-range"] == f"bytes 1048576-1348576/{len(video)}"
    tail = await gw.http.get(
        f"/api/v1/artifacts/{T1}/video", headers=gw.auth("alice") | {"Range": "bytes=-100"}
    )
    assert tail.status_code == 206 and tail.content == video[-100:]
    beyond = await gw.http.get(
        f"/api/v1/artifacts/{T1}/video", headers=gw.auth("alice") | {"Range": "bytes=99999999-"}
    )
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(video)}"
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"

    script = await gw.http.get(f"/api/v1/artifacts/{T1}/script", headers=gw.auth())
    assert script.status_code == 200 and script.json() == {"segments": []}
    missing = await gw.http.get(f"/api/v1/artifacts/{T1}/thumbnail", headers=gw.auth())
    assert missing.status_code == 404
    denied = await gw.http.get(f"/api/v1/artifacts/{T1}/video", headers=gw.auth("bob"))
    assert denied.status_code == 403


async def test_an_unreachable_store_answers_503(
    gateway_factory: Factory, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    gw = await gateway_factory(artifact_url="s3://bucket/artifacts")
    result = {"source_video_uri": f"s3://bucket/artifacts/{T1}/render/video.mp4"}
    gw.fake.put_task(make_state(T1, status=TaskStatus.COMPLETED, result=result))
    response = await gw.http.get(f"/api/v1/artifacts/{T1}/video", headers=gw.auth("alice"))
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-" + "9" * 5000, (0, 999)),
        ("bytes=-" + "9" * 5000, (0, 999)),
        ("bytes=" + "0" * 5000 + "5-9", (5, 9)),
    ],
)
def test_ranges_of_any_length_are_read_without_converting_them(
    header: str, expected: tuple[int, int]
) -> None:
    """Past 4,300 digits `int()` raises ValueError: the artifact route answered 500."""
    assert byte_range(header, 1000) == expected


def test_a_range_starting_at_a_huge_position_is_unsatisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range("bytes=" + "1" * 5000 + "-", 1000)


async def test_a_huge_range_is_no_server_error(
    gateway_factory: Factory, s3_env: dict[str, str], s3_bucket: str
) -> None:
    gw = await gateway_factory(artifact_url=f"s3://{s3_bucket}/artifacts")
    stored = await gw.gateway.artifacts.put(f"{T1}/render/video.mp4", b"v" * 1000, "video/mp4")
    result = {"source_video_uri": stored.uri}
    gw.fake.put_task(make_state(T1, status=TaskStatus.COMPLETED, result=result))
    url = f"/api/v1/artifacts/{T1}/video"
    tail = await gw.http.get(url, headers=gw.auth() | {"Range": "bytes=-" + "9" * 5000})
    assert tail.status_code == 206 and len(tail.content) == 1000
    beyond = await gw.http.get(url, headers=gw.auth() | {"Range": "bytes=" + "1" * 5000 + "-"})
    assert beyond.status_code == 416
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"


#: Malformed, unsatisfiable, several and ordinary ranges: each store answers each alike.
RANGE_HEADERS = [
    "bytes=x-y",
    "items=0-1",
    "bytes=-",
    "garbage",
    "bytes=9-3",
    "bytes=1000-",
    "bytes=1000-1001",
    "bytes=-0",
    "bytes=0-1,5-6",
    "bytes=0-" + "9" * 5000,
    "bytes=" + "1" * 5000 + "-",
    "bytes=0-99",
    "bytes=-10",
    "bytes=100-",
    "bytes=999-999",
]
BLOB = bytes(range(250)) * 4  # 1,000 bytes


async def _answer(gw: Harness, header: str) -> tuple[int, bytes, str | None, str | None]:
    response = await gw.http.get(
        f"/api/v1/artifacts/{T1}/video", headers=gw.auth() | {"Range": header}
    )
    return (
        response.status_code,
        response.content,
        response.headers.get("content-range"),
        response.headers.get("content-type"),
    )


def _expected(header: str) -> tuple[int, bytes, str | None]:
    """What the range rules (`byte_range`) say the answer is for BLOB."""
    try:
        wanted = byte_range(header, len(BLOB))
    except RangeNotSatisfiable:
        return 416, b"", f"bytes */{len(BLOB)}"
    if wanted is None:
        return 200, BLOB, None
    start, end = wanted
    return 206, BLOB[start : end + 1], f"bytes {start}-{end}/{len(BLOB)}"


@pytest.mark.parametrize("header", RANGE_HEADERS)
async def test_a_local_file_answers_every_range_by_the_same_rules(
    gateway_factory: Factory, header: str
) -> None:
    """The file store's artifacts went out as starlette's `FileResponse`, which answered a
    malformed range with a plain-text 400 and an unsatisfiable one with an empty 416 (no
    `ErrorBody`), and several ranges with a multipart 206: not what an s3:// store answers."""
    gw = await gateway_factory()
    store = gw.gateway.artifacts
    stored = await store.put(f"{T1}/render/video.mp4", BLOB, "video/mp4")
    assert store.local_path(f"{T1}/render/video.mp4") is not None
    gw.fake.put_task(
        make_state(T1, status=TaskStatus.COMPLETED, result={"source_video_uri": stored.uri})
    )
    status, body, content_range, content_type = await _answer(gw, header)
    want_status, want_body, want_range = _expected(header)
    assert (status, content_range) == (want_status, want_range), body[:200]
    if status == 416:
        assert content_type == "application/json"
        assert json.loads(body)["error"]["code"] == "range_not_satisfiable"
    else:
        assert body == want_body and content_type == "video/mp4"


async def test_the_file_and_the_s3_store_answer_every_range_alike(
    gateway_factory: Factory, s3_env: dict[str, str], s3_bucket: str
) -> None:
    local = await gateway_factory()
    remote = await gateway_factory(artifact_url=f"s3://{s3_bucket}/artifacts")
    for gw in (local, remote):
        stored = await gw.gateway.artifacts.put(f"{T1}/render/video.mp4", BLOB, "video/mp4")
        gw.fake.put_task(
            make_state(T1, status=TaskStatus.COMPLETED, result={"source_video_uri": stored.uri})
        )
    for header in RANGE_HEADERS:
        assert await _answer(local, header) == await _answer(remote, header), header
