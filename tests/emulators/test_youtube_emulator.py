"""The YouTube emulator keeps to the protocol it stands in for (so adapter tests mean something)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.emulators.youtube import (
    CHUNK_UNIT,
    READONLY_SCOPE,
    UPLOAD_SCOPE,
    UPLOADS_PLAYLIST,
    Cut,
    LoseAnswer,
    YouTubeEmulator,
)


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


async def upload(
    emulator: YouTubeEmulator, http: httpx.AsyncClient, tags: list[str], data: bytes = b"v"
) -> tuple[str, httpx.Response]:
    """A one-chunk upload: the session URI and the last chunk's answer."""
    auth = await token(emulator, http)
    answer = await http.post(
        f"{emulator.base_url}/upload/youtube/v3/videos",
        params={"uploadType": "resumable", "part": "snippet,status"},
        json={"snippet": {"title": "t", "tags": tags}},
        headers={**auth, "X-Upload-Content-Length": str(len(data))},
    )
    uri = answer.headers["location"]
    range_ = f"bytes 0-{len(data) - 1}/{len(data)}"
    return uri, await http.put(uri, content=data, headers={**auth, "Content-Range": range_})


async def test_the_uploads_playlist_lists_the_channels_videos_newest_first_in_pages(
    yt: tuple[YouTubeEmulator, httpx.AsyncClient],
) -> None:
    emulator, http = yt
    ids = [(await upload(emulator, http, [f"n{n}"]))[1].json()["id"] for n in range(3)]
    auth = await token(emulator, http)
    api = f"{emulator.base_url}/youtube/v3"
    channels = await http.get(
        f"{api}/channels", params={"part": "contentDetails", "mine": "true"}, headers=auth
    )
    [channel] = channels.json()["items"]
    uploads = channel["contentDetails"]["relatedPlaylists"]["uploads"]
    assert channels.json()["kind"] == "youtube#channelListResponse" and uploads.startswith("UU")
    query = {"part": "contentDetails", "playlistId": uploads, "maxResults": "2"}
    first = (await http.get(f"{api}/playlistItems", params=query, headers=auth)).json()
    assert [i["contentDetails"]["videoId"] for i in first["items"]] == ids[:0:-1]
    assert first["pageInfo"]["totalResults"] == 3 and "snippet" not in first["items"][0]
    second = (
        await http.get(
            f"{api}/playlistItems",
            params=query | {"pageToken": first["nextPageToken"]},
            headers=auth,
        )
    ).json()
    assert [i["contentDetails"]["videoId"] for i in second["items"]] == ids[:1]
    assert "nextPageToken" not in second
    videos = await http.get(
        f"{api}/videos", params={"part": "snippet", "id": f"{ids[1]},nosuchvideo"}, headers=auth
    )
    [video] = videos.json()["items"]
    assert video["id"] == ids[1] and video["snippet"]["tags"] == ["n1"] and "status" not in video


@pytest.mark.parametrize(
    ("path", "params", "status", "reason"),
    [
        ("channels", {"mine": "true"}, 400, "required"),
        ("channels", {"part": "nonsense", "mine": "true"}, 400, "unknownPart"),
        ("channels", {"part": "id"}, 400, "missingRequiredParameter"),
        ("channels", {"part": "id", "mine": "true", "id": "UCx"}, 400, "incompatibleParameters"),
        ("playlistItems", {"part": "id", "playlistId": "PLnope"}, 404, "playlistNotFound"),
        ("videos", {"part": "snippet"}, 400, "missingRequiredParameter"),
    ],
)
async def test_lists_refuse_what_google_refuses(
    yt: tuple[YouTubeEmulator, httpx.AsyncClient],
    path: str,
    params: dict[str, str],
    status: int,
    reason: str,
) -> None:
    emulator, http = yt
    answer = await http.get(
        f"{emulator.base_url}/youtube/v3/{path}", params=params, headers=await token(emulator, http)
    )
    assert answer.status_code == status
    assert answer.json()["error"]["errors"][0]["reason"] == reason


@pytest.mark.parametrize(
    ("query", "reason"),
    [({"maxResults": "51"}, "invalidParameter"), ({"pageToken": "bm9wZQ"}, "invalidPageToken")],
)
async def test_a_page_beyond_what_the_playlist_gives_is_400(
    yt: tuple[YouTubeEmulator, httpx.AsyncClient], query: dict[str, str], reason: str
) -> None:
    emulator, http = yt
    answer = await http.get(
        f"{emulator.base_url}/youtube/v3/playlistItems",
        params={"part": "id", "playlistId": UPLOADS_PLAYLIST, **query},
        headers=await token(emulator, http),
    )
    assert answer.status_code == 400 and answer.json()["error"]["errors"][0]["reason"] == reason


async def test_a_token_without_a_scope_the_method_takes_is_403() -> None:
    async with (
        YouTubeEmulator(scopes=(UPLOAD_SCOPE,)) as upload_only,
        YouTubeEmulator(scopes=(READONLY_SCOPE,)) as readonly,
        httpx.AsyncClient(timeout=5) as http,
    ):
        refused = [
            await http.get(
                f"{upload_only.base_url}/youtube/v3/channels",
                params={"part": "id", "mine": "true"},
                headers=await token(upload_only, http),
            ),
            await http.post(
                f"{readonly.base_url}/upload/youtube/v3/videos",
                params={"uploadType": "resumable", "part": "snippet"},
                json={"snippet": {"title": "t"}},
                headers={**await token(readonly, http), "X-Upload-Content-Length": "1"},
            ),
        ]
        assert (await upload(upload_only, http, []))[1].status_code == 201
    for answer in refused:
        assert answer.status_code == 403
        assert answer.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"


async def test_a_lost_answer_keeps_what_was_done_and_an_expired_session_is_404(
    yt: tuple[YouTubeEmulator, httpx.AsyncClient],
) -> None:
    emulator, http = yt
    emulator.inject("chunk", LoseAnswer())
    with pytest.raises(httpx.TransportError):
        await upload(emulator, http, [])
    [video] = emulator.videos.values()
    uri = next(iter(emulator.sessions.values())).upload_id
    auth = await token(emulator, http)
    session = f"{emulator.base_url}/upload/youtube/v3/videos?uploadType=resumable&upload_id={uri}"
    status = await http.put(session, headers={**auth, "Content-Range": "bytes */1"})
    assert status.status_code == 200 and status.json()["id"] == video.id
    emulator.expire_sessions()
    gone = await http.put(session, headers={**auth, "Content-Range": "bytes */1"})
    assert gone.status_code == 404 and list(emulator.videos) == [video.id]


async def test_a_new_video_is_listed_only_after_the_listing_delay() -> None:
    async with (
        YouTubeEmulator(listing_delay_s=0.3) as emulator,
        httpx.AsyncClient(timeout=5) as http,
    ):
        await upload(emulator, http, [])
        auth = await token(emulator, http)

        async def listed() -> int:
            answer = await http.get(
                f"{emulator.base_url}/youtube/v3/playlistItems",
                params={"part": "id", "playlistId": UPLOADS_PLAYLIST},
                headers=auth,
            )
            return len(answer.json()["items"])

        assert await listed() == 0
        deadline = asyncio.get_running_loop().time() + 5
        while await listed() == 0:
            assert asyncio.get_running_loop().time() < deadline, "never listed"
            await asyncio.sleep(0.05)
