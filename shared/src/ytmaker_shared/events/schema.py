"""The JSON Schema of every event, exported to shared/schemas/events.schema.json.

`python -m ytmaker_shared.events.schema` rewrites the file; a unit test fails when the
committed file differs from what the models say.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ytmaker_shared.events.codec import EVENT_ADAPTER

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "schemas" / "events.schema.json"


def event_schema() -> dict[str, Any]:
    schema = EVENT_ADAPTER.json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ytmaker event"
    return schema


def render() -> str:
    return json.dumps(event_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    SCHEMA_FILE.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
