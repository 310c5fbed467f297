"""The YouTube emulator keeps to the protocol it stands in for (so adapter tests mean something)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.emulators.youtube import CHUNK_UNIT, Cut, YouTubeEmulator


@pytest.fixture
async def yt() -> AsyncIterator[tuple[YouTubeEmulator, httpx.AsyncClient]]:
    async with YouTubeEmulator() as emulator, httpx.AsyncClient(timeout=5) as http:
        yield emulator, http


async def token(emulator: YouTubeEmulator, http: httpx.AsyncClient) -> dict[str, str]:
    answer = await http.post(
        emulator.token_url,
        data={
            "grant_type": "refresh_token",
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
            "refresh_token": emulator.refresh_token,
        },
    )
    assert answer.status_code == 200 and answer.json()["token_type"] == "Bearer"
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def session(emulator: YouTubeEmulator, http: httpx.AsyncClient, total: int) -> str:
    answer = await http.post(
        f"{emulator.base_url}/upload/youtube/v3/videos",
        params={"uploadType": "resumable", "part": "snippet,status"},
        json={"snippet": {"title": "t"}, "status": {"privacyStatus": "unlisted"}},
        headers={
            **await token(emulator, http),
            "X-Upload-Content-Length": str(total),
            "X-Upload-Content-Type": "video/mp4",
        },
    )
    assert answer.status_code == 200
    return answer.headers["location"]


async def test_the_token_endpoint_refuses_a_bad_grant_and_a_bad_client(
    yt: tuple[YouTubeEmulator, httpx.AsyncClient],
) -> None:
    emulator, http = yt
    form = {
        "grant_type": "refresh_token",
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
        "refresh_token": "nope",
    }
    bad_grant = await http.post(emulator.token_url, data=form)
    assert bad_grant.status_code == 400 and bad_grant.json()["error"] == "invalid_grant"
    bad_client = await http.post(emulator.token_url, data=form | {"client_secret": "x"})
    assert bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"


async def test_api_calls_need_a_valid_bearer_token(
    yt: tuple[YouTubeEmulator, httpx.AsyncClient],
) -> None:
    emulator, http = yt
    answer = await http.post(
        f"{emulator.base_url}/upload/youtube/v3/videos?uploadType=resumable&part=snippet",
        json={"snippet": {"title": "t"}},
        headers={"X-Upload-Content-Length": "10"},
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["errors"][0]["reason"] == "authError"


async def test_chunks_are_whole_256k_units_from_the_stored_byte_until_the_last(
    yt: tuple[YouTubeEmulator, httpx.AsyncClient],
) -> None:
    emulator, http = yt
    total = CHUNK_UNIT + 10
    uri = await session(emulator, http, total)
    auth = await token(emulator, http)
    status = await http.put(uri, headers={**auth, "Content-Range": f"bytes */{total}"})
    assert status.status_code == 308 and "range" not in status.headers
    odd = await http.put(
        uri, content=b"x" * 1000, headers={**auth, "Content-Range": f"bytes 0-999/{total}"}
    )
    assert odd.status_code == 400 and "256 KiB" in odd.text
    first = await http.put(
        uri,
        content=b"a" * CHUNK_UNIT,
        headers={**auth, "Content-Range": f"bytes 0-{CHUNK_UNIT - 1}/{total}"},
    )
    assert first.status_code == 308 and first.headers["range"] == f"bytes=0-{CHUNK_UNIT - 1}"
    gap = await http.put(
        uri,
        content=b"b" * 5,
        headers={**auth, "Content-Range": f"bytes {CHUNK_UNIT + 5}-{total - 1}/{total}"},
    )
    assert gap.status_code == 400
    last = await http.put(
        uri,
        content=b"b" * 10,
        headers={**auth, "Content-Range": f"bytes {CHUNK_UNIT}-{total - 1}/{total}"},
    )
    assert last.status_code == 201 and last.json()["status"]["privacyStatus"] == "unlisted"
    again = await http.put(uri, headers={**auth, "Content-Range": f"bytes */{total}"})
    assert again.status_code == 200 and again.json()["id"] == last.json()["id"]


async def test_a_cut_keeps_whole_units_and_drops_the_connection(
    yt: tuple[YouTubeEmulator, httpx.AsyncClient],
) -> None:
    emulator, http = yt
    total = 3 * CHUNK_UNIT
    uri = await session(emulator, http, total)
    auth = await token(emulator, http)
    emulator.inject("chunk", Cut(after_bytes=CHUNK_UNIT + CHUNK_UNIT // 2))
    with pytest.raises(httpx.TransportError):
        await http.put(
            uri,
            content=b"z" * total,
            headers={**auth, "Content-Range": f"bytes 0-{total - 1}/{total}"},
        )
    status = await http.put(uri, headers={**auth, "Content-Range": f"bytes */{total}"})
    assert status.status_code == 308 and status.headers["range"] == f"bytes=0-{CHUNK_UNIT - 1}"


async def test_an_unknown_session_is_404(yt: tuple[YouTubeEmulator, httpx.AsyncClient]) -> None:
    emulator, http = yt
    auth = await token(emulator, http)
    answer = await http.put(
        f"{emulator.base_url}/upload/youtube/v3/videos?uploadType=resumable&upload_id=gone",
        headers={**auth, "Content-Range": "bytes */10"},
    )
    assert answer.status_code == 404
