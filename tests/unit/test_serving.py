"""`ytmaker_shared.serving.server_config`: uvicorn's records go to our JSON handler, and the
connections a stopping server's grace cuts short are a warning (a rolling update with a client
that stopped reading), while uvicorn's other errors stay errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from ytmaker_shared.serving import server_config


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def uvicorn_errors() -> Iterator[list[logging.LogRecord]]:
    logger = logging.getLogger("uvicorn.error")
    filters = list(logger.filters)
    handler = _Records()
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)
    logger.filters[:] = filters


def test_a_grace_that_ran_out_is_a_warning_and_other_errors_stay_errors(
    uvicorn_errors: list[logging.LogRecord],
) -> None:
    config = server_config(object(), port=0)
    server_config(object(), port=0)  # a second server in the process adds nothing
    assert config.log_config is None and config.access_log is False
    logger = logging.getLogger("uvicorn.error")
    # uvicorn 0.54's own call (uvicorn/server.py, Server.shutdown)
    logger.error("Cancel %s running task(s), timeout graceful shutdown exceeded", 2)
    logger.error("Exception in ASGI application")
    assert [(r.levelname, r.getMessage()) for r in uvicorn_errors] == [
        ("WARNING", "Cancel 2 running task(s), timeout graceful shutdown exceeded"),
        ("ERROR", "Exception in ASGI application"),
    ]
    assert sum(type(f).__name__ == "_GraceExceededIsAWarning" for f in logger.filters) == 1
