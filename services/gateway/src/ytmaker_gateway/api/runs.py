"""`GET /api/v1/runs`: the caller's runs (tasks), newest first, for the live page's "My runs"
list; filterable by status and project. Kept apart from rest.py, which it only extends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from ytmaker_gateway.adapters.progress_api import ProgressUnavailable
from ytmaker_gateway.api.models import ERRORS
from ytmaker_gateway.api.rest import Gw, Who
from ytmaker_gateway.rules.errors import Unavailable
from ytmaker_gateway.rules.ids import UUID_PATTERN
from ytmaker_shared.progress import TaskState, TaskStatus

router = APIRouter(prefix="/api/v1", responses=ERRORS)


class RunList(BaseModel):
    """The caller's runs, newest first (an operator's cover every user with `all=true`)."""

    items: list[TaskState]


class ProjectInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    project_id: str
    owner: str
    title: str
    content: str
    settings: dict[str, Any]
    created_at: datetime | None = None


class ProjectView(BaseModel):
    """`GET /projects/{project_id}`: the project and its runs, newest first."""

    project: ProjectInfo
    tasks: list[TaskState]


@router.get("/runs", tags=["projects"], responses={200: {"model": RunList}})
async def runs(
    gw: Gw,
    who: Who,
    status: TaskStatus | None = None,
    project_id: Annotated[
        str | None, Query(pattern=UUID_PATTERN, max_length=36, description="A project id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    all: bool = False,
) -> dict[str, Any]:
    """The caller's runs, newest first; `status` and `project_id` filter them."""
    owner = None if all and who.is_operator else who.user
    try:
        items = await gw.progress.tasks(
            owner=owner, project_id=project_id, status=status, limit=limit
        )
    except ProgressUnavailable as exc:
        raise Unavailable(str(exc)) from None
    return {"items": items}
