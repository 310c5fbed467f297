"""The gateway's OpenAPI document, tried by schemathesis:
every operation, with inputs the document allows (positive) and inputs it forbids (negative),
with generated ids and with the ids of a real task and project of the caller, against a
gateway on the real broker. No answer is a 5xx, every status and content type is one the
document declares, every body matches its schema, and every input the document forbids is
refused with a 4xx.

Seeded: the seed is printed, and `YTMAKER_FUZZ_SEED=<seed>` repeats a run.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_dict

# `from_dict` imports this on its first call, and pytest rewrites a plugin's modules as they are
# imported (ast.parse). CPython 3.11 keeps the AST constructor's recursion depth in the
# interpreter's state, shared by its threads, and can find it wrong ("SystemError: AST
# constructor recursion depth mismatch", python/cpython#106905; CI at 0f9621a, once in ~40
# runs, while the test's gateway and broker clients ran): imported here, at collection, instead.
import schemathesis.specs.openapi.schemas  # noqa: F401  isort: skip
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.gateway.conftest import Cluster, cluster  # noqa: F401 (a fixture)
from tests.support.gateway import make_update
from ytmaker_shared.events import new_event_id

pytestmark = pytest.mark.kafka

SEED = int(os.environ.get("YTMAKER_FUZZ_SEED") or random.randrange(2**32))
EXAMPLES = 10  # per operation, per generation mode, per kind of ids
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


@dataclass
class _Tally:
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    unsatisfiable: list[str] = field(default_factory=list)


def _run(spec: dict[str, Any], base: str, token: str, ids: dict[str, str]) -> _Tally:
    """Every operation of `spec` against `base`, in this thread (the gateway serves from the
    test's event loop meanwhile)."""
    schema = from_dict(spec)
    tally = _Tally()
    headers = {"Authorization": f"Bearer {token}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.iter_parameters() if p.location == "path"}
        known = {name: ids[name] for name in names if name in ids}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in ({}, known) if known else ({},):
                strategy = operation.as_strategy(
                    generation_mode=mode, path_parameters=path_parameters or None
                )
                extra = (
                    response_schema_conformance
                    if mode is GenerationMode.POSITIVE
                    else negative_data_rejection
                )
                what = f"{operation.label} ({mode.value}, ids {sorted(path_parameters)})"
                try:
                    _try(what, strategy, [*CHECKS, extra], base, headers, tally)
                except Unsatisfiable:  # e.g. no input of this operation can be invalid
                    tally.unsatisfiable.append(what)
    return tally


def _try(
    what: str,
    strategy: Any,
    checks: list[Any],
    base: str,
    headers: dict[str, str],
    tally: _Tally,
) -> None:
    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        phases=[Phase.explicit, Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def call(case: Any) -> None:
        response = case.call(base_url=base, headers=headers, timeout=30)
        tally.calls += 1
        tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
        # schemathesis counts only 400/401/403/404/406/422/428 as refusing invalid input; a
        # body past the size limit (413) or a per-user limit (429) refuses it too.
        refused_otherwise = response.status_code in (413, 429)
        used = [c for c in checks if not (refused_otherwise and c is negative_data_rejection)]
        try:
            case.validate_response(response, checks=used, headers=headers)
        except Exception as exc:  # a schemathesis failure: said briefly (bodies can be MBs)
            request = response.request
            sent = f"{request.method} {request.url}"[:300]
            raise AssertionError(
                f"{what}: {sent} → {response.status_code} {response.text[:300]!r}: "
                f"{str(exc)[:1500]}"
            ) from None

    call()


@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_the_openapi_document_holds_for_any_input(
    cluster: Cluster,  # noqa: F811 (the fixture)
) -> None:
    print(f"fuzz seed {SEED} (YTMAKER_FUZZ_SEED={SEED} repeats it)")
    replica = await cluster.replica(unknown_task_wait_s=0, runs_burst=50)
    task_id = new_event_id()
    await cluster.write(make_update(task_id, n=0))
    project_id = cluster.fake.tasks[task_id]["project_id"]
    async with httpx.AsyncClient(base_url=replica.server.base) as http:
        spec = (await http.get("/openapi.json")).json()
    tally = await asyncio.to_thread(
        _run,
        spec,
        replica.server.base,
        cluster.token(),
        {"task_id": task_id, "project_id": project_id},
    )
    print(f"{tally.calls} calls on {len(spec['paths'])} paths; statuses {tally.statuses}")
    print(f"no input could be made for: {tally.unsatisfiable}")
    assert tally.calls >= 10 * len(spec["paths"])
    assert not any(status >= 500 for status in tally.statuses)
    assert {200, 201, 202, 403, 422} <= set(tally.statuses)  # the run reached every layer
