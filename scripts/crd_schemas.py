"""Turn operators' CustomResourceDefinitions into the JSON Schemas that tests/deploy validates
deploy/k8s's custom resources against (deploy/k8s/schemas/SOURCES.md says which files of which
release they come from).

    python scripts/crd_schemas.py CRD.yaml [CRD.yaml ...]

For each served version of each CRD, writes `deploy/k8s/schemas/<group>/<kind>_<version>.json`:
the version's `openAPIV3Schema`, with `description`s dropped (they do not validate anything and
are most of the bytes) and made strict as the API server is with `kubectl --validate=strict`:
an object schema that lists its `properties` and does not say
`x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false`, so that a misspelt
field fails instead of being pruned in silence.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "schemas"


def strict(schema: Any) -> Any:
    """A copy of `schema` without descriptions and closed to unknown properties."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if k != "description"}
    if "properties" in schema:  # a property may be *named* description
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def convert(path: Path) -> list[Path]:
    written = []
    for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"].lower()
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = strict(version["schema"]["openAPIV3Schema"])
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            target = OUT / group / f"{kind}_{version['name']}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n", "utf-8")
            written.append(target)
    return written


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for name in argv:
        for target in convert(Path(name)):
            print(f"wrote {target.relative_to(OUT.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
