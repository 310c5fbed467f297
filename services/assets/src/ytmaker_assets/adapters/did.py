"""D-ID talks, as its API reference documents them: `POST /talks` (source picture and a text
script) → `{id, status: created}`; `GET /talks/{id}` until `status` is `done` (with
`result_url`) or `error`/`rejected`; then the clip is fetched from `result_url`. Auth is
`Authorization: Basic <key>`, sent to D-ID's own host only: `result_url` (a storage link
on another host) is fetched without it, and no redirect is followed. A cancelled job deletes
its talk (best effort)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import httpx

from ytmaker_assets.adapters.http import json_object, response_error, text_of
from ytmaker_shared.http import bounded_client, transport_error
from ytmaker_shared.script import Segment
from ytmaker_shared.stageworker import JobContext, PermanentError, TransientError

SERVICE = "d-id"
_TALK_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def _talk_id(answer: Any) -> str | None:
    """The talk id a create's answer names, if it is a valid one."""
    talk_id = answer.get("id") if isinstance(answer, dict) else None
    return talk_id if isinstance(talk_id, str) and _TALK_ID.match(talk_id) else None


def _message(response: httpx.Response) -> str:
    body = json_object(response)
    if body is None:
        return response.text[:500]
    return f"{text_of(body.get('kind', 'error'))}: {text_of(body.get('description', ''))}"


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON object D-ID answered; raises TransientError (`d-id_bad_answer`) otherwise."""
    body = json_object(response)
    if body is None:
        raise TransientError(f"{SERVICE}_bad_answer", f"not a JSON object: {response.text[:200]!r}")
    return body


class DIDAvatars:
    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        source_url: str,
        timeout_s: float = 60.0,
        poll_interval_s: float = 1.0,
        max_polls: int = 600,
        max_answer_bytes: int = 256 * 2**20,  # a presenter clip of a segment: a few MiB
        answer_within_s: float = 300.0,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.source_url = source_url
        self.poll_interval_s = poll_interval_s
        self.max_polls = max_polls
        self.api = httpx.URL(self.base)
        self._auth = {"authorization": f"Basic {api_key}"}
        self.client = bounded_client(
            max_answer_bytes,
            answer_within_s,
            headers={"accept": "application/json"},
            timeout=timeout_s,
            follow_redirects=False,
        )

    def _credentials_for(self, url: str) -> dict[str, str]:
        """The key, for a URL on D-ID's own scheme, host and port only."""
        target = httpx.URL(url)
        same = (target.scheme, target.host, target.port) == (
            self.api.scheme,
            self.api.host,
            self.api.port,
        )
        return self._auth if same else {}

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.client.request(
                method, url, headers=self._credentials_for(url), **kwargs
            )
        except httpx.TransportError as exc:
            raise transport_error(SERVICE, exc) from exc
        if response.status_code >= 400:
            raise response_error(SERVICE, response, _message(response))
        if response.status_code >= 300:  # no redirect is followed: its body is not the answer
            raise PermanentError(
                f"{SERVICE}_bad_answer", f"{method} answered {response.status_code}, a redirect"
            )
        return response

    async def clip(self, ctx: JobContext, segment: Segment) -> tuple[bytes, str]:
        body = {
            "source_url": self.source_url,
            "script": {"type": "text", "input": segment.narration[:2000]},
            "config": {"result_format": "mp4"},
        }
        created = _answer(await self._create(body))
        talk_id = _talk_id(created)
        if talk_id is None:
            raise TransientError(f"{SERVICE}_bad_answer", f"no valid talk id in {created!r}"[:500])
        finished = False
        try:
            for poll in range(1, self.max_polls + 1):
                talk = _answer(await self._call("GET", f"{self.base}/talks/{talk_id}"))
                status = talk.get("status")
                if status == "done" and talk.get("result_url"):
                    video = await self._call("GET", _https_or_http(talk["result_url"]))
                    finished = True
                    return video.content, video.headers.get("content-type", "video/mp4")
                if status in ("error", "rejected"):
                    finished = True
                    error = talk.get("error")
                    why = (
                        f"{text_of(error.get('kind', ''))} {text_of(error.get('description', ''))}"
                        if isinstance(error, dict)
                        else text_of(error or "")
                    )
                    raise PermanentError(f"{SERVICE}_{status}", f"talk {talk_id} {status}: {why}")
                shown = text_of(status, 40)  # an unknown status is D-ID's text, not ours
                await ctx.progress.report(
                    min(poll, 9), 10, f"presenter clip {shown}", current_step=shown
                )
                await asyncio.sleep(self.poll_interval_s)
            raise TransientError(f"{SERVICE}_timeout", f"talk {talk_id} not done in time")
        finally:
            if not finished:
                await self._delete(talk_id)

    async def _create(self, body: dict[str, Any]) -> httpx.Response:
        """POST /talks. A job cancelled while D-ID makes the talk still deletes it once its
        answer names it (the talk exists as soon as D-ID has the request)."""
        creating = asyncio.ensure_future(self._call("POST", f"{self.base}/talks", json=body))
        try:
            return await asyncio.shield(creating)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                if (talk_id := _talk_id(json_object(await creating))) is not None:
                    await self._delete(talk_id)
            raise

    async def _delete(self, talk_id: str) -> None:
        """Delete an unfinished talk (best effort: it expires at D-ID anyway)."""
        with contextlib.suppress(Exception):
            url = f"{self.base}/talks/{talk_id}"
            await asyncio.shield(self.client.delete(url, headers=self._credentials_for(url)))

    async def aclose(self) -> None:
        await self.client.aclose()


def _https_or_http(url: Any) -> str:
    """`url` if it is an absolute http(s) URL; raises PermanentError otherwise."""
    try:
        scheme = httpx.URL(url).scheme if isinstance(url, str) else None
    except httpx.InvalidURL:
        scheme = None
    if scheme not in ("https", "http"):
        raise PermanentError(f"{SERVICE}_bad_answer", "result_url is not an http(s) URL")
    return str(url)
