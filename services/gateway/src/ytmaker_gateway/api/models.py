"""Request and response bodies of the public REST API (docs/protocol.md "REST"), with OpenAPI
examples."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ytmaker_shared.events import ControlAction, ProjectSettings


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectSettingsInput(ProjectSettings):
    """`ProjectSettings` as a client may send them: every field bounded (each tag too)."""

    tags: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = Field(
        default=(), max_length=30
    )

    @field_validator("target_length_seconds", "segments", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        """The schema says integer; pydantic's lax mode would take `true` for 1 and "4"
        for 4."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a whole number")
        return value

    def contract(self) -> ProjectSettings:
        """The same settings as the event contract's model."""
        return ProjectSettings.model_validate(self.model_dump())


class ProjectCreate(Strict):
    """A new project; its first run starts at once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "How tides work",
                    "content": "The Moon's gravity pulls on the oceans...",
                    "settings": {"language": "en", "segments": 4, "target_length_seconds": 40},
                }
            ]
        },
    )

    title: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=100_000)
    settings: ProjectSettingsInput = ProjectSettingsInput()

    @field_validator("title", "content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        """Also no NUL character: the read model's PostgreSQL text cannot hold one, and the
        project would never be stored."""
        if not value.strip():
            raise ValueError("must not be blank")
        if "\x00" in value:
            raise ValueError("must not contain a NUL character (U+0000)")
        return value


class RunCreate(Strict):
    """Another run of a project; `settings` replaces the project's settings for this run."""

    settings: ProjectSettingsInput | None = None


class Started(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "project_id": "0190f1c2-7a3b-7c00-8000-000000000001",
                    "task_id": "0190f1c2-7a3b-7c00-8000-000000000002",
                    "ws_url": "ws://127.0.0.1:8080/api/v1/ws",
                    "page_url": "http://127.0.0.1:8080/projects/0190f1c2-7a3b-7c00-8000-000000000001",
                }
            ]
        }
    )

    project_id: str
    task_id: str
    ws_url: str
    page_url: str


class ControlRequest(Strict):
    reason: str = Field(default="", max_length=1000)


class ControlAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"task_id": "0190f1c2-...", "action": "cancel", "accepted": True, "event_id": "…"}
            ]
        }
    )

    task_id: str
    action: ControlAction
    accepted: bool
    event_id: str


class ArtifactLink(BaseModel):
    """A URL that opens one artifact without the Authorization header, until `expires_at`:
    for a `<video src>` or `<img src>`. Relative to the gateway's base URL."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "/api/v1/artifacts/0190f1c2-7a3b-7c00-8000-000000000002/video"
                    "?grant=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9…",
                    "expires_at": "2025-01-01T13:00:00Z",
                }
            ]
        }
    )

    url: str
    expires_at: datetime


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorBody(BaseModel):
    """Every error (docs/protocol.md "Errors")."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "forbidden",
                        "message": "no such task or project for you",
                        "details": {},
                    }
                }
            ]
        }
    )

    error: ErrorDetail


class HistoryItem(BaseModel):
    offset: int
    epoch: str | None = None
    update: dict[str, Any]


class History(BaseModel):
    task_id: str
    source: Literal["memory", "database"]
    items: list[HistoryItem]


class Stats(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "total_tasks": 12,
                    "active_tasks": 2,
                    "completed_tasks": 8,
                    "failed_tasks": 1,
                    "cancelled_tasks": 1,
                }
            ]
        },
    )

    total_tasks: int
    active_tasks: int
    completed_tasks: int
    failed_tasks: int
    cancelled_tasks: int


class ClientSubscription(BaseModel):
    client_id: str
    task_id: str
    subscribed: bool


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (401, "no or bad token"),
        (403, "not yours (or does not exist)"),
        (404, "no such route, artifact or connected client"),
        (409, "the task's state forbids it"),
        (413, "the body is larger than the limit (YTMAKER_MAX_BODY_BYTES)"),
        (422, "invalid input"),
        (429, "a per-user limit: wait `Retry-After` seconds"),
        (503, "a backing service is unavailable"),
    )
}
