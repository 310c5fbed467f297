"""docs/protocol.md covers the whole public interface: every route of the gateway's app (REST,
WebSocket, the pages), every client action and server message type of the contract
(shared/schemas/gateway.schema.json) with each of its fields, and every field of a task's
state. A route, a message or a field added without its documentation fails here."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI

from ytmaker_gateway.api.ws import STREAMS
from ytmaker_gateway.app import create_app
from ytmaker_gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
SCHEMA: dict[str, Any] = json.loads(
    (ROOT / "shared" / "schemas" / "gateway.schema.json").read_text(encoding="utf-8")
)
DEFS: dict[str, Any] = SCHEMA["$defs"]


def section(title: str) -> str:
    """The text under the heading `title` (any level), up to the next heading."""
    found = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#|\Z)", DOC, re.M | re.S)
    assert found, f"docs/protocol.md has no section {title!r}"
    return found.group(1)


def row(text: str, name: str) -> str:
    """The table row of `text` whose first cell is `name` in backticks."""
    for line in text.splitlines():
        if line.startswith(f"| `{name}` |"):
            return line
    raise AssertionError(f"docs/protocol.md: no row for `{name}`")


def named(text: str, fields: Iterable[str]) -> list[str]:
    """The fields not written as `field` in `text`."""
    return [f for f in fields if f"`{f}`" not in text]


def ref_names(node: dict[str, Any]) -> list[str]:
    """The $defs a schema node refers to (directly or through anyOf / oneOf)."""
    if "$ref" in node:
        return [node["$ref"].rsplit("/", 1)[-1]]
    return [
        name for option in node.get("anyOf", node.get("oneOf", [])) for name in ref_names(option)
    ]


def properties(name: str) -> list[str]:
    return list(DEFS[name].get("properties", {}))


# --- the app's routes -------------------------------------------------------------------------


@cache
def app() -> FastAPI:
    """The gateway's app as it is built for serving; building it touches only the settings."""
    settings = GatewaySettings(jwt_secret="x" * 40)
    return create_app(SimpleNamespace(settings=settings))  # type: ignore[arg-type]


def walk(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(prefix, route) for every route, through included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from walk(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
        else:
            yield prefix, route


def documented_forms() -> list[str]:
    """Each route as the page writes it: `GET /path`, `WS /path`, or `/mount/` for files; the
    streams served beside FastAPI's routes (decision 0108) among them."""
    forms: list[str] = [f"`WS {path}`" for path in STREAMS]
    for prefix, route in walk(app().routes):
        path = prefix + route.path
        methods = getattr(route, "methods", None)
        if methods:
            forms += [f"`{m} {path}`" for m in sorted(methods - {"HEAD"})]
        elif type(route).__name__.endswith("WebSocketRoute"):
            forms.append(f"`WS {path}`")
        else:
            forms.append(f"`{path}/`")
    return forms


def test_the_walk_finds_the_routes_it_must() -> None:
    forms = documented_forms()
    for form in ("`POST /api/v1/projects`", "`WS /api/v1/ws`", "`GET /healthz`", "`/static/`"):
        assert form in forms, f"{form} not among the app's routes: {forms}"


def test_every_route_of_the_app_is_documented() -> None:
    missing = [form for form in documented_forms() if form not in DOC]
    assert not missing, f"docs/protocol.md does not document {missing}"


def test_every_path_of_the_openapi_document_is_documented() -> None:
    paths = app().openapi()["paths"]
    missing = [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method in operations
        if f"`{method.upper()} {path}`" not in DOC
    ]
    assert not missing, f"docs/protocol.md does not document {missing}"


# --- the messages ------------------------------------------------------------------------------

SERVER: dict[str, str] = SCHEMA["properties"]["ServerMessage"]["discriminator"]["mapping"]
CLIENT: dict[str, str] = SCHEMA["properties"]["ClientMessage"]["discriminator"]["mapping"]
STATE_FIELDS = set(properties("TaskState"))


def test_the_schema_has_the_unions_this_test_reads() -> None:
    assert {"connected", "subscribed", "progress", "snapshot"} <= set(SERVER)
    assert {"subscribe", "unsubscribe", "cancel", "ping"} <= set(CLIENT)


@pytest.mark.parametrize("action", sorted(CLIENT))
def test_every_client_action_is_documented_with_its_fields(action: str) -> None:
    line = row(section("Client messages (`/api/v1/ws`)"), action)
    model = CLIENT[action].rsplit("/", 1)[-1]
    missing = named(line, [f for f in properties(model) if f != "action"])
    assert not missing, f"`{action}`: fields {missing} are not documented"


@pytest.mark.parametrize("type_", sorted(SERVER))
def test_every_server_message_is_documented_with_its_fields(type_: str) -> None:
    line = row(section("Server messages"), type_)
    message = SERVER[type_].rsplit("/", 1)[-1]
    fields: list[str] = []
    for payload in ref_names(DEFS[message]["properties"]["payload"]):
        # The task's state has its own table; a payload that extends it names what it adds.
        fields += [f for f in properties(payload) if f not in STATE_FIELDS]
    missing = named(line, fields)
    assert not missing, f"`{type_}`: payload fields {missing} are not documented"


def test_every_field_of_a_task_state_is_documented() -> None:
    text = section("A task's state")
    missing = named(text, [*STATE_FIELDS, *properties("StageState")])
    assert not missing, f"a task's state: fields {missing} are not documented"
    for values in ("TaskStatus", "StageStatus", "Stage"):
        missing = named(text, DEFS[values]["enum"])
        assert not missing, f"{values}: values {missing} are not documented"


def test_every_rest_body_field_is_documented() -> None:
    text = section("Routes")
    for body in ("Started", "ControlAccepted", "Stats", "ProjectView", "History", "RunList"):
        assert f"`{body}`" in text, f"the REST routes do not name `{body}`"
        missing = [f for f in properties(body) if f not in text]
        assert not missing, f"`{body}`: fields {missing} are not documented"
