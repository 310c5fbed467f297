"""The processes of a whole ytmaker system, as `make run` starts them, the end-to-end tests run
them and the manifests deploy them (docs/decisions/0039).

The progress service runs its fold and its read side as two processes: the fold's latency must
not depend on how much history the read side holds or how busy its API is.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Process:
    name: str  # unique within a system
    service: str  # the service package, ytmaker_<service>
    arguments: tuple[str, ...] = ()

    def command(self) -> list[str]:
        """The command line that runs it with this interpreter."""
        return [sys.executable, "-m", f"ytmaker_{self.service}", *self.arguments]


#: Start order: the read side first, so that nothing the pipeline writes waits for a reader;
#: the gateway last.
PROCESSES: tuple[Process, ...] = (
    Process("progress-fold", "progress", ("fold",)),
    Process("progress", "progress", ("api",)),
    Process("script", "script"),
    Process("assets", "assets"),
    Process("render", "render"),
    Process("upload", "upload"),
    Process("gateway", "gateway"),
)


def process(name: str) -> Process:
    """The process called `name`; raises KeyError."""
    for each in PROCESSES:
        if each.name == name:
            return each
    raise KeyError(name)


def select(names: set[str]) -> list[Process]:
    """The processes named, or of the services named (`progress`: both of its processes), in
    start order; raises KeyError naming what is unknown."""
    unknown = names - {p.name for p in PROCESSES} - {p.service for p in PROCESSES}
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    return [p for p in PROCESSES if p.name in names or p.service in names]
