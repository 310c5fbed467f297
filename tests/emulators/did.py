"""A D-ID talks emulator, as its API reference documents it.

- `POST /talks` (JSON: `source_url`, `script` {type text+input or audio+audio_url},
  `config`) with `Authorization: Basic <key>` → 201 `{id, object: "talk", status: "created",
  created_at}`.
- `GET /talks/{id}` → the talk; each poll moves `created → started → done` (after
  `polls_to_done` polls), `done` carries `result_url` and `duration`. `DELETE /talks/{id}`.
- `GET /results/{id}.mp4`: the clip bytes (a stand-in unless `clip` is set to a real MP4),
  on `result_base_url` when set (D-ID's results live on a storage host, not on its API's);
  the Authorization header each result request carried is kept in `result_authorizations`.
- Errors: `{"kind": "...", "description": "..."}`: 400 ValidationError, 401
  AuthorizationError, 404 NotFoundError, 429 TooManyRequestsError, 5xx InternalServerError.
- Fault kinds `create`, `poll`: `Fail(status)`, `Hang(s)`. `fail_talks = True` makes new
  talks end in `status: "error"` with a FaceError.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.emulators.base import EmulatorServer, Fail, Faults, Hang

_KINDS = {
    400: "ValidationError",
    401: "AuthorizationError",
    404: "NotFoundError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def did_error(status: int, description: str) -> JSONResponse:
    return JSONResponse(
        {"kind": _KINDS.get(status, "Error"), "description": description}, status_code=status
    )


class DIDEmulator:
    def __init__(self, api_key: str = "dGVzdDp0ZXN0", polls_to_done: int = 2) -> None:
        self.api_key = api_key
        self.polls_to_done = polls_to_done
        self.faults = Faults()
        self.talks: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.fail_talks = False
        #: How long a create answers after the talk exists (a job cancelled meanwhile).
        self.create_answer_delay_s = 0.0
        self.clip = b"\x00\x00\x00\x18ftypmp42emulated-clip"
        self.base_url = ""
        self.result_base_url = ""
        self.result_authorizations: list[str | None] = []
        self.result_url_override: Any = None  # what `result_url` says instead, when set
        self.talk_id_override: Any = None  # what `id` says instead, when set
        self.app = FastAPI()
        self.app.post("/talks")(self._create)
        self.app.get("/talks/{talk_id}")(self._get)
        self.app.delete("/talks/{talk_id}")(self._delete)
        self.app.get("/results/{name}")(self._result)

    def _auth(self, request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != f"Basic {self.api_key}":
            return did_error(401, "invalid or missing Basic credentials")
        return None

    async def _fault(self, kind: str) -> JSONResponse | None:
        fault = self.faults.take(kind)
        if isinstance(fault, Fail):
            return did_error(fault.status, f"emulated failure {fault.status}")
        if isinstance(fault, Hang):
            await asyncio.sleep(fault.seconds)
        return None

    async def _create(self, request: Request) -> Response:
        if (denied := self._auth(request)) or (failed := await self._fault("create")):
            return denied or failed  # type: ignore[return-value]
        try:
            body = await request.json()
            script = body["script"]
            assert script["type"] in ("text", "audio") and body["source_url"]
        except Exception:
            return did_error(400, "source_url and script {type, input} are required")
        talk_id = "tlk_" + uuid.uuid4().hex[:12]
        self.talks[talk_id] = {
            "id": talk_id,
            "object": "talk",
            "status": "created",
            "created_at": datetime.now(UTC).isoformat(),
            "source_url": body["source_url"],
            "polls": 0,
        }
        self.base_url = str(request.base_url).rstrip("/")
        shown = {k: v for k, v in self.talks[talk_id].items() if k != "polls"}
        if self.talk_id_override is not None:
            shown["id"] = self.talk_id_override
        await asyncio.sleep(self.create_answer_delay_s)
        return JSONResponse(shown, status_code=201)

    async def _get(self, talk_id: str, request: Request) -> Response:
        if (denied := self._auth(request)) or (failed := await self._fault("poll")):
            return denied or failed  # type: ignore[return-value]
        talk = self.talks.get(talk_id)
        if talk is None:
            return did_error(404, f"talk {talk_id} not found")
        talk["polls"] += 1
        if self.fail_talks:
            talk["status"] = "error"
            talk["error"] = {"kind": "FaceError", "description": "no face found in the source"}
        elif talk["polls"] >= self.polls_to_done:
            talk["status"] = "done"
            results = self.result_base_url or self.base_url
            talk["result_url"] = self.result_url_override or f"{results}/results/{talk_id}.mp4"
            talk["duration"] = 4.0
        else:
            talk["status"] = "started"
        return JSONResponse({k: v for k, v in talk.items() if k != "polls"})

    async def _delete(self, talk_id: str, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        self.deleted.append(talk_id)
        self.talks.pop(talk_id, None)
        return JSONResponse({"deleted": 1})

    async def _result(self, name: str, request: Request) -> Response:
        self.result_authorizations.append(request.headers.get("authorization"))
        return Response(self.clip, media_type="video/mp4")

    def server(self) -> EmulatorServer:
        return EmulatorServer(self.app)
