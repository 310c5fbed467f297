"""Wiring: the fold, the read-model sink, the ETA projector (fed by the sink), the cleanup, the
stall watch and the internal API in one process.

`YTMAKER_PROGRESS_RUN_FOLD=false`, `..._RUN_API=false` or `..._RUN_ETA=false` leaves a part out
(the fold scales with the number of partitions, the API with the readers; one ETA projector
per deployment is enough, more only write the same estimates twice).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
from datetime import UTC, datetime, timedelta

from ytmaker_progress.api import create_app
from ytmaker_progress.readmodel.memory import RecentHistory
from ytmaker_progress.readmodel.store import Store
from ytmaker_progress.runners.eta import EtaProjector
from ytmaker_progress.runners.fold import FoldService
from ytmaker_progress.runners.sink import Sink
from ytmaker_progress.runners.stall import StallWatch
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.kafka import ensure_topics
from ytmaker_shared.service import run_service
from ytmaker_shared.serving import Server, server_config

log = logging.getLogger(__name__)


class ProgressService:
    """Everything the process runs; `ready()` is its readiness."""

    def __init__(self, settings: ProgressSettings) -> None:
        self.settings = settings
        self.fold: FoldService | None = None  # made in run(): aiokafka needs the loop
        self.store: Store | None = None
        self.sink: Sink | None = None
        self.http_port: int | None = None
        self.eta: EtaProjector | None = None

    def ready(self) -> bool:
        fold_ready = not self.settings.progress_run_fold or (
            self.fold is not None and self.fold.ready
        )
        read_ready = not self.settings.progress_run_api or (
            self.sink is not None and self.sink.ready
        )
        return fold_ready and read_ready

    async def run(self, stopping: asyncio.Event) -> None:
        """Run until `stopping` is set or a part fails (then the process should exit)."""
        await ensure_topics(self.settings)
        tasks = []
        if self.settings.progress_run_fold:
            self.fold = FoldService(self.settings)
            tasks.append(asyncio.create_task(self.fold.run(stopping), name="fold"))
        if self.settings.progress_run_eta and not self.settings.progress_run_api:
            log.warning("no ETA projector: it runs with the read side, fed by its sink")
        if self.settings.progress_run_api:
            tasks += await self._start_read_side(stopping)
        try:
            stop = asyncio.create_task(stopping.wait())
            done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            for task in done - {stop}:  # a part that ended on its own stops the process
                task.result()
                if not stopping.is_set():
                    raise RuntimeError(f"the {task.get_name()} part ended unexpectedly")
        finally:
            stopping.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.store is not None:
                self.store.close()

    async def _start_read_side(self, stopping: asyncio.Event) -> list[asyncio.Task[None]]:
        s = self.settings
        self.store = store = await asyncio.to_thread(Store, s.progress_database_url)
        memory = RecentHistory(
            per_task=s.progress_memory_history, max_bytes=s.progress_memory_history_bytes
        )
        self.eta = eta = EtaProjector(s) if s.progress_run_eta else None
        if eta is not None:
            await asyncio.to_thread(eta.load, store)  # before the sink reads (decision 0085)
        self.sink = sink = Sink(s, store, memory, on_batch=eta.saw if eta else None)
        app = create_app(
            store,
            memory,
            token=s.internal_token.get_secret_value() if s.internal_token else "",
            epoch=lambda: sink.epoch,
            ready=self.ready,
            eta_window_s=s.progress_eta_window_s,
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((s.progress_http_host, s.progress_http_port))
        self.http_port = sock.getsockname()[1]
        server = Server(server_config(app))
        log.info("internal API", extra={"url": f"http://{s.progress_http_host}:{self.http_port}"})

        async def serve() -> None:
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            await stopping.wait()
            server.should_exit = True
            await serving

        stall_watch = StallWatch(s, store, ready=lambda: sink.ready)
        parts = [asyncio.create_task(eta.run(stopping, sink.caught_up), name="eta")] if eta else []
        return [
            *parts,
            asyncio.create_task(sink.run(stopping), name="sink"),
            asyncio.create_task(serve(), name="api"),
            asyncio.create_task(self._cleanup(store, stopping), name="cleanup"),
            asyncio.create_task(stall_watch.run(stopping), name="stall-watch"),
        ]

    async def _cleanup(self, store: Store, stopping: asyncio.Event) -> None:
        """Forget finished tasks older than the retention, every cleanup interval."""
        s = self.settings
        while not stopping.is_set():
            cutoff = datetime.now(UTC) - timedelta(days=s.progress_retention_days)
            removed = await asyncio.to_thread(store.cleanup, cutoff)
            if removed:
                log.info("cleaned up finished tasks", extra={"tasks": removed})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.progress_cleanup_interval_s):
                    await stopping.wait()


#: The parts each command runs (the settings `progress_run_*`).
PARTS = {
    "serve": {},
    "fold": {"progress_run_fold": True, "progress_run_api": False, "progress_run_eta": False},
    "api": {"progress_run_fold": False, "progress_run_api": True, "progress_run_eta": True},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ytmaker_progress")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the fold and the read side in one process (default)")
    sub.add_parser("fold", help="run the fold alone")
    sub.add_parser("api", help="run the read side alone: read model, internal API, ETA, stalls")
    rebuild = sub.add_parser("rebuild", help="replay the topics into a fresh database")
    rebuild.add_argument("--into", required=True, help="URL of the new (empty) database")
    rebuild.add_argument("--compare", help="URL of the live database to compare with")
    args = parser.parse_args(argv)
    settings = ProgressSettings()
    if args.command == "rebuild":
        from ytmaker_progress.rebuild import rebuild_and_compare

        sys.exit(asyncio.run(rebuild_and_compare(settings, args.into, args.compare)))
    settings = settings.model_copy(update=PARTS[args.command or "serve"])
    if settings.progress_run_api and settings.internal_token is None:
        sys.exit(
            "ytmaker_progress: set YTMAKER_INTERNAL_TOKEN (the service credential the gateway "
            "presents): the internal API does not run unauthenticated"
        )
    service = ProgressService(settings)
    run_service("progress", settings, service.run, service.ready)
