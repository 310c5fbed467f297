"""The SDK's REST client against answers no gateway should give (docs/protocol.md: every refusal
is an `ErrorBody`): each is an `ApiError`, never another exception, a file or a success; and
the token goes only to the gateway. httpx's mock transport stands in for the network."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ytmaker_client import ApiError, RestClient

TOKEN = "s3cret-token"
TASK = "0190f1c2-7a3b-7c00-8000-000000000002"


def _client(answer: httpx.Response, asked: list[httpx.Request]) -> RestClient:
    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if request.url.host != "gateway":
            return httpx.Response(200, content=b"what another host holds")
        return answer

    return RestClient("http://gateway", TOKEN, transport=httpx.MockTransport(handle))


async def test_a_redirect_to_another_host_is_an_error_not_a_downloaded_file(
    tmp_path: Path,
) -> None:
    """A proxy or a misconfigured gateway answers 302 to another host: the SDK wrote the
    redirect's body as the video and returned its path, as if the download had worked."""
    asked: list[httpx.Request] = []
    moved = httpx.Response(302, headers={"location": "http://elsewhere/x"}, content=b"moved")
    async with _client(moved, asked) as rest:
        with pytest.raises(ApiError) as refused:
            await rest.download(TASK, "video", tmp_path / "video.mp4")
        with pytest.raises(ApiError):
            await rest.delete_history(TASK)  # was taken for done
    assert refused.value.status == 302
    assert not list(tmp_path.iterdir())  # noqa: ASYNC240 - a check after the fact
    assert {r.url.host for r in asked} == {"gateway"}  # the token went nowhere else


@pytest.mark.parametrize("status", [200, 500])
async def test_an_answer_nested_too_deep_is_an_api_error(status: int) -> None:
    """`json` raises RecursionError (not ValueError) for deep nesting: it leaked raw."""
    asked: list[httpx.Request] = []
    deep = httpx.Response(status, content=b"[" * 100_000 + b"]" * 100_000)
    async with _client(deep, asked) as rest:
        with pytest.raises(ApiError) as refused:
            await rest.stats()
    assert refused.value.status == status


async def test_an_id_is_one_path_segment() -> None:
    """An id with `/`, `?` or `#` must not address another route (the TypeScript SDK and the
    WebSocket URLs encode it)."""
    asked: list[httpx.Request] = []
    refused = httpx.Response(422, json={"error": {"code": "invalid_request", "message": "no"}})
    async with _client(refused, asked) as rest:
        for call in (rest.task, rest.project, rest.cancel, rest.history, rest.delete_history):
            with pytest.raises(ApiError):
                await call("../runs?all=true#")
        with pytest.raises(ApiError):
            await rest.cancel("..")
    paths = [r.url.raw_path.decode() for r in asked]
    assert all("/..%2Fruns%3Fall%3Dtrue%23" in p for p in paths[:-1]), paths
    assert paths[-1] == "/api/v1/tasks/%2E%2E/cancel"


async def test_an_artifact_link_is_asked_for_with_the_header_and_carries_no_token() -> None:
    """A link is for a browser (`<video src>`): its grant opens that artifact only, for a
    while, where the token would open everything for its whole life (docs/decisions/0134)."""
    asked: list[httpx.Request] = []
    url = f"/api/v1/artifacts/{TASK}/video?grant=g.r.ant"
    link = httpx.Response(200, json={"url": url, "expires_at": "2030-01-01T00:00:00Z"})
    async with _client(link, asked) as rest:
        got = await rest.artifact_link(TASK, "video")
        assert got.url == f"http://gateway{url}"
        assert got.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
        with pytest.raises(ValueError):
            await rest.artifact_link(TASK, "passwd")  # type: ignore[arg-type]
    [request] = asked
    assert request.url.path == f"/api/v1/artifacts/{TASK}/video/link"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("url", "expires_at"),
    [
        ("https://elsewhere.example/x", "2030-01-01T00:00:00Z"),
        (7, "2030-01-01T00:00:00Z"),
        (None, "2030-01-01T00:00:00Z"),
        (f"/api/v1/artifacts/{TASK}/thumbnail?grant=g", "soon"),
        (f"/api/v1/artifacts/{TASK}/thumbnail?grant=g", None),
    ],
)
async def test_a_link_that_is_not_the_gateways_path_or_has_no_expiry_is_a_bad_answer(
    url: object, expires_at: object
) -> None:
    asked: list[httpx.Request] = []
    link = httpx.Response(200, json={"url": url, "expires_at": expires_at})
    async with _client(link, asked) as rest:
        with pytest.raises(ApiError) as refused:
            await rest.artifact_link(TASK, "thumbnail")
    assert refused.value.code == "bad_answer"


@pytest.mark.parametrize("body", [[], {"instance": "a"}, {"total_clients": "many"}, None])
async def test_operator_answers_of_a_wrong_shape_are_bad_answers(body: object) -> None:
    asked: list[httpx.Request] = []
    async with _client(httpx.Response(200, json=body), asked) as rest:
        for call in (rest.active, rest.websocket_stats):
            with pytest.raises(ApiError) as refused:
                await call()
            assert refused.value.code == "bad_answer"


async def test_operator_answers_are_typed() -> None:
    local = {"total_clients": 1, "by_user": {"a": 1}, "by_project": {}}
    active = {"instance": "i", "local": local, "total_clients": 2, "by_user": {"a": 2}}
    fanout = {"partitions": 3, "subscribed_tasks": 1, "project_streams": 0}
    stats = {**local, "instance": "i", "messages_sent": 9, "reconnects": 1}
    stats |= {"reconnects_restored": 0, "fanout": fanout}
    asked: list[httpx.Request] = []
    async with _client(httpx.Response(200, json=active | {"sessions": []}), asked) as rest:
        found = await rest.active()
    assert found.total_clients == 2 and found.local.by_user == {"a": 1} and found.sessions == []
    async with _client(httpx.Response(200, json=stats), asked) as rest:
        ws = await rest.websocket_stats()
    assert ws.messages_sent == 9 and ws.fanout["subscribed_tasks"] == 1
