"""The JSON Schema of the gateway's public messages, exported to
shared/schemas/gateway.schema.json: the WebSocket and Socket.IO messages (api/messages.py)
and the REST bodies (api/models.py, api/runs.py). The TypeScript SDK generates its types and
type guards from it (clients/typescript).

`python -m ytmaker_gateway.schema` rewrites the file; a unit test fails when the committed
file differs from what the models say.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ytmaker_gateway.api import messages, models, runs
from ytmaker_shared.events import ProjectSettings
from ytmaker_shared.progress import ProgressUpdate, TaskState

SCHEMA_FILE = Path(__file__).resolve().parents[4] / "shared" / "schemas" / "gateway.schema.json"


class GatewayContract(BaseModel):
    """Every public shape, one property each; the property name is the type's name."""

    model_config = ConfigDict(title="ytmaker gateway contract")

    ServerMessage: messages.ServerMessage
    ClientMessage: messages.ClientMessage
    UpdatePayload: messages.UpdatePayload
    TaskState: TaskState
    ProgressUpdate: ProgressUpdate
    ProjectSettings: ProjectSettings
    ProjectCreate: models.ProjectCreate
    RunCreate: models.RunCreate
    Started: models.Started
    ControlRequest: models.ControlRequest
    ControlAccepted: models.ControlAccepted
    ErrorBody: models.ErrorBody
    ArtifactLink: models.ArtifactLink
    History: models.History
    Stats: models.Stats
    RunList: runs.RunList
    ProjectView: runs.ProjectView


def gateway_schema() -> dict[str, Any]:
    schema = GatewayContract.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render() -> str:
    return json.dumps(gateway_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    SCHEMA_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
