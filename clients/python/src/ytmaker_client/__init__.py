"""ytmaker's Python SDK: follow runs live with exact resume (`ProgressClient`), call the REST
API (`RestClient`), or both, blocking (`SyncClient`). docs/sdk-python.md is the guide."""

from ytmaker_client.errors import (
    ApiError,
    AuthenticationError,
    ConnectionLost,
    SubscriptionError,
    TransportError,
    YtmakerError,
)
from ytmaker_client.models import (
    ActiveClients,
    ControlResult,
    History,
    HistoryItem,
    Item,
    Project,
    ProjectSettings,
    ProjectView,
    RunList,
    Snapshot,
    Stage,
    StageStatus,
    Started,
    Stats,
    TaskState,
    TaskStatus,
    Update,
    UpdateType,
    WebSocketStats,
)
from ytmaker_client.options import ClientOptions, ConnectionState, StateChange
from ytmaker_client.progress import ProgressClient, ProjectSubscription, TaskSubscription
from ytmaker_client.rest import ARTIFACT_NAMES, RestClient
from ytmaker_client.sync import SyncClient

__all__ = [
    "ARTIFACT_NAMES",
    "ActiveClients",
    "ApiError",
    "AuthenticationError",
    "ClientOptions",
    "ConnectionLost",
    "ConnectionState",
    "ControlResult",
    "History",
    "HistoryItem",
    "Item",
    "ProgressClient",
    "Project",
    "ProjectSettings",
    "ProjectSubscription",
    "ProjectView",
    "RestClient",
    "RunList",
    "Snapshot",
    "Stage",
    "StageStatus",
    "Started",
    "StateChange",
    "Stats",
    "SubscriptionError",
    "SyncClient",
    "TaskState",
    "TaskStatus",
    "TaskSubscription",
    "TransportError",
    "Update",
    "UpdateType",
    "WebSocketStats",
    "YtmakerError",
]
