"""The WebSocket's token outside its URL (docs/protocol.md "Authentication", decision 0133): a
browser cannot set a WebSocket's Authorization header, so it offers the subprotocols
`ytmaker.v1` and `bearer.<JWT>`. The gateway takes the token from the second and selects the
first (a browser fails a connection whose server selects none of those it offered), never the
token."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.support.gateway import PROJECT

from .conftest import Factory
from .test_ws import _closed_with, _recv

STREAMS = ["/api/v1/ws", f"/api/v1/projects/{PROJECT}/progress"]


def _offer(*names: str) -> list[Subprotocol]:
    return [Subprotocol(name) for name in names]


@pytest.mark.parametrize("path", STREAMS)
async def test_a_token_offered_as_a_subprotocol_is_served_as_ytmaker_v1(
    gateway_factory: Factory, path: str
) -> None:
    gw = await gateway_factory()
    offer = _offer("ytmaker.v1", f"bearer.{gw.token()}")
    async with connect(f"{gw.ws}{path}", subprotocols=offer) as ws:
        assert ws.subprotocol == "ytmaker.v1"
        assert ws.response is not None
        assert ws.response.headers.get_all("Sec-WebSocket-Protocol") == ["ytmaker.v1"]
        assert (await _recv(ws))["type"] == "connected"


@pytest.mark.parametrize("path", STREAMS)
@pytest.mark.parametrize("bearer", ["bearer.forged", "bearer.", "bearer.a.b.c"])
async def test_a_bad_token_offered_as_a_subprotocol_closes_with_4401(
    gateway_factory: Factory, path: str, bearer: str
) -> None:
    gw = await gateway_factory()
    async with connect(f"{gw.ws}{path}", subprotocols=_offer("ytmaker.v1", bearer)) as ws:
        assert ws.subprotocol == "ytmaker.v1"  # selected first, so that a browser sees the code
        assert await _closed_with(ws) == 4401


async def test_the_header_comes_first_then_the_subprotocol_then_the_query(
    gateway_factory: Factory,
) -> None:
    gw = await gateway_factory()
    offer = _offer("ytmaker.v1", f"bearer.{gw.token()}")
    async with connect(f"{gw.ws}/api/v1/ws?token=forged", subprotocols=offer) as ws:
        assert (await _recv(ws))["type"] == "connected"
    forged = {"Authorization": "Bearer forged"}
    async with connect(f"{gw.ws}/api/v1/ws", subprotocols=offer, additional_headers=forged) as ws:
        assert await _closed_with(ws) == 4401


async def test_without_ytmaker_v1_on_offer_the_token_still_counts_and_none_is_selected(
    gateway_factory: Factory,
) -> None:
    """What RFC 6455 lets a server do with subprotocols it does not speak: select none. A
    client that cannot take that (a browser) fails the connection itself."""
    gw = await gateway_factory()
    offer = _offer("chat", f"bearer.{gw.token()}")
    async with connect(f"{gw.ws}/api/v1/ws", subprotocols=offer) as ws:
        assert ws.subprotocol is None
        assert ws.response is not None and "Sec-WebSocket-Protocol" not in ws.response.headers
        assert (await _recv(ws))["type"] == "connected"


@pytest.mark.parametrize(("origin", "allowed"), [("http://localhost", True), ("null", False)])
async def test_the_development_mode_selects_ytmaker_v1_when_it_refuses_too(
    gateway_factory: Factory, origin: str, allowed: bool
) -> None:
    gw = await gateway_factory(dev_allow_anonymous=True)
    headers = {"origin": origin}
    async with connect(
        f"{gw.ws}/api/v1/ws", subprotocols=_offer("ytmaker.v1"), additional_headers=headers
    ) as ws:
        assert ws.subprotocol == "ytmaker.v1"
        if allowed:
            assert (await _recv(ws))["type"] == "connected"
        else:
            assert await _closed_with(ws) == 4403


def _tokens_in_url(route: str) -> float:
    return REGISTRY.get_sample_value("ytmaker_gateway_tokens_in_url_total", {"route": route}) or 0


async def test_a_token_in_the_url_is_still_served_and_counted(gateway_factory: Factory) -> None:
    """The deprecated `?token=` works, and each use is counted, so that an operator sees when
    no client sends it any more; a token in a subprotocol or the header is not counted."""
    gw = await gateway_factory()
    before = _tokens_in_url("websocket")
    async with connect(f"{gw.ws}/api/v1/ws?token={gw.token()}") as ws:
        assert (await _recv(ws))["type"] == "connected"
    assert _tokens_in_url("websocket") == before + 1
    offer = _offer("ytmaker.v1", f"bearer.{gw.token()}")
    async with connect(f"{gw.ws}/api/v1/ws", subprotocols=offer) as ws:
        assert (await _recv(ws))["type"] == "connected"
    header = {"Authorization": f"Bearer {gw.token()}"}
    async with connect(f"{gw.ws}/api/v1/ws", additional_headers=header) as ws:
        assert (await _recv(ws))["type"] == "connected"
    assert _tokens_in_url("websocket") == before + 1
