"""Wiring: settings → producer, fan-out hub, replay readers, read-model client → the app, served
by uvicorn until SIGTERM/SIGINT (`python -m ytmaker_gateway`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket

from ytmaker_gateway import metrics
from ytmaker_gateway.adapters.progress_api import ProgressApi
from ytmaker_gateway.api.edge import is_loopback_host
from ytmaker_gateway.api.wsprotocol import BatchingWebSocketProtocol
from ytmaker_gateway.app import create_app
from ytmaker_gateway.core.access import Access, RecentTasks
from ytmaker_gateway.core.commands import Commands
from ytmaker_gateway.core.sessions import SessionRegistry
from ytmaker_gateway.fanout.hub import Hub
from ytmaker_gateway.fanout.replay import ReplayReader
from ytmaker_gateway.fanout.streams import Streams
from ytmaker_gateway.gateway import Gateway
from ytmaker_gateway.rules.limits import RateLimiter
from ytmaker_gateway.settings import GatewaySettings
from ytmaker_shared import gcpolicy
from ytmaker_shared.kafka import EventProducer, ensure_topics
from ytmaker_shared.logging import configure_logging
from ytmaker_shared.service import run_loop
from ytmaker_shared.serving import Server, server_config

log = logging.getLogger(__name__)

SERVICE = "gateway"


def build(
    settings: GatewaySettings,
    producer: EventProducer,
    *,
    progress: ProgressApi | None = None,
    reader: ReplayReader | None = None,
) -> Gateway:
    """A Gateway from settings; the caller starts the producer and the hub. Tests pass their
    own `progress` client and replay `reader`."""
    if progress is None:
        token = settings.internal_token.get_secret_value() if settings.internal_token else None
        progress = ProgressApi(settings.progress_url, settings.progress_timeout_s, token=token)
    hub = Hub(settings)
    access = Access(progress, RecentTasks(), settings.unknown_task_wait_s, live=hub)
    return Gateway(
        settings=settings,
        tokens=settings.token_config(),
        progress=progress,
        access=access,
        commands=Commands(
            producer,
            access,
            f"{SERVICE}/{settings.instance}",
            RateLimiter(settings.runs_per_minute, settings.runs_burst),
        ),
        hub=hub,
        streams=Streams(
            hub,
            reader or ReplayReader(settings),
            settings.client_queue_size,
            page_size=settings.replay_page,
            stall_s=settings.replay_stall_s,
        ),
        sessions=SessionRegistry(
            settings.session_window_s, progress, restore_wait_s=settings.session_restore_wait_s
        ),
        artifacts=settings.artifact_store(),
    )


def refuse_anonymous_on_a_network(settings: GatewaySettings) -> None:
    """Raise SystemExit when anonymous access is on and the address to bind is not a loopback
    one: a development flag must not open the system to a network."""
    if settings.dev_allow_anonymous and not is_loopback_host(settings.host):
        raise SystemExit(
            f"YTMAKER_DEV_ALLOW_ANONYMOUS is for development on this machine only: refusing to "
            f"listen on {settings.host!r}; bind a loopback address (127.0.0.1) or turn it off"
        )


def bind(settings: GatewaySettings) -> socket.socket:
    refuse_anonymous_on_a_network(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(settings: GatewaySettings, stopping: asyncio.Event) -> None:
    """Run the gateway until `stopping` is set."""
    refuse_anonymous_on_a_network(settings)
    if not settings.jwt_secret and not settings.dev_allow_anonymous:
        log.warning("no YTMAKER_JWT_SECRET and anonymous access off: every request gets 401")
    await ensure_topics(settings)
    producer = EventProducer(settings, SERVICE)
    await producer.start()
    gateway = build(settings, producer)
    hub_stopping = asyncio.Event()
    try:
        await gateway.hub.start()
        await gateway.streams.reader.warm_up()
        hub_task = asyncio.create_task(gateway.hub.run(hub_stopping), name="fanout")
        checkpoints = asyncio.create_task(
            gateway.sessions.run_checkpoints(settings.session_checkpoint_s, hub_stopping)
            if settings.session_checkpoint_s > 0
            else hub_stopping.wait(),
            name="session-checkpoints",
        )
        sock = bind(settings)
        config = server_config(
            create_app(gateway),
            ws=BatchingWebSocketProtocol,
            ws_max_size=settings.max_frame_bytes,
            ws_per_message_deflate=settings.ws_compression,
            ws_ping_interval=settings.heartbeat_interval_s,
            ws_ping_timeout=2 * settings.heartbeat_interval_s,
            proxy_headers=False,
            # A client that does not read must not hold a stopping gateway up for ever.
            timeout_graceful_shutdown=settings.shutdown_grace_s,
        )
        server = Server(config)
        server_task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        host, port = sock.getsockname()[:2]
        log.info("listening", extra={"url": f"http://{host}:{port}/"})
        async with gcpolicy.scheduled(settings):
            stop_wait = asyncio.create_task(stopping.wait())
            await asyncio.wait(
                {server_task, hub_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED
            )
            server.should_exit = True
            hub_stopping.set()
            stop_wait.cancel()
        for task in (server_task, hub_task, checkpoints):
            with contextlib.suppress(Exception):
                await task
        await gateway.sessions.drain()
        if (failed := hub_task.exception()) is not None:
            raise failed  # the fan-out stopped (partitions grew: decision 0138): exit non-zero
    finally:
        await gateway.streams.reader.close()
        await gateway.progress.close()
        await producer.stop()
        log.info("stopped")


def main() -> None:
    settings = GatewaySettings()
    configure_logging(SERVICE, settings.log_level)
    metrics.watch_gc()

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await serve(settings, stopping)

    run_loop(settings, run())
