"""What the code says about each service, for comparing with the manifests: its settings class
(so every variable it reads is known), the port it listens on for each setting, and for a stage
its consumer group and input topics (read from its `main.py`, where the StageWorker is built)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings

from ytmaker_assets.settings import AssetsSettings
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_progress.settings import ProgressSettings
from ytmaker_render.settings import RenderSettings
from ytmaker_script.settings import ScriptSettings
from ytmaker_shared.topics import Topic
from ytmaker_upload.settings import UploadSettings

ROOT = Path(__file__).resolve().parents[2]

#: The settings class of each image (services/<image>/src/ytmaker_<image>/settings.py).
SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "progress": ProgressSettings,
    "script": ScriptSettings,
    "assets": AssetsSettings,
    "render": RenderSettings,
    "upload": UploadSettings,
}
STAGES = ("script", "assets", "render", "upload")

#: Variables that libraries read, not our settings classes: boto3 (the s3:// artifact store)
#: and libpq (the read model's password).
LIBRARY_ENV = frozenset(
    {
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PGPASSWORD",
    }
)


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """{environment variable: field} for every field of a settings class."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field, info in cls.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names |= {str(c): field for c in choices}
        elif isinstance(alias, str):
            names[alias] = field
        else:
            names[(prefix + field).upper()] = field
    return names


@dataclass(frozen=True)
class StageWiring:
    group: str
    topics: tuple[str, ...]


def stage_wiring(image: str) -> StageWiring:
    """The consumer group (the SERVICE constant, under the topic prefix) and the input topics
    of `services/<image>/src/ytmaker_<image>/main.py`'s `StageWorker(settings, SERVICE, works,
    [Topic.X, ...])`."""
    tree = ast.parse((ROOT / f"services/{image}/src/ytmaker_{image}/main.py").read_text())
    service = next(
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "SERVICE" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    )
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "StageWorker"
    ]
    assert len(calls) == 1, f"{image}: expected one StageWorker(...) in main.py"
    topics_arg = calls[0].args[3]
    assert isinstance(topics_arg, ast.List)
    topics = tuple(
        Topic[element.attr].value
        for element in topics_arg.elts
        if isinstance(element, ast.Attribute)
    )
    return StageWiring(str(service), topics)
