"""Runtime behaviour that needs no broker: a clear error when none answers, health endpoints,
JSON logs with the event's context."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from ytmaker_dev.ports import free_port
from ytmaker_shared import serving
from ytmaker_shared.health import HealthServer
from ytmaker_shared.kafka import BrokerUnavailable, EventProducer
from ytmaker_shared.logging import QUIET_LIBRARIES, JsonFormatter, configure_logging, log_context
from ytmaker_shared.settings import ServiceSettings


async def test_producer_fails_clearly_when_no_broker_answers() -> None:
    settings = ServiceSettings(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", producer_delivery_timeout_s=1.0
    )
    producer = EventProducer(settings, "test")
    with pytest.raises(BrokerUnavailable, match=r"no Kafka broker at 127\.0\.0\.1:\d+ after 1s"):
        await producer.start()


async def test_health_server_reports_liveness_readiness_and_metrics() -> None:
    ready = False
    server = HealthServer("test", lambda: ready, "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/healthz")).json()["status"] == "ok"
            assert (await client.get("/readyz")).status_code == 503
            ready = True
            assert (await client.get("/readyz")).status_code == 200
            metrics = await client.get("/metrics")
            assert "ytmaker_events_consumed_total" in metrics.text
    finally:
        await server.stop()


async def test_an_http_server_without_a_tick_still_stops_when_told_and_dates_its_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serving, "TICK_S", 3600.0)  # no tick would ever notice should_exit
    server = HealthServer("test", lambda: True, "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/healthz")).headers["date"].endswith(" GMT")
    finally:
        async with asyncio.timeout(10):  # uvicorn's own loop would need the hour
            await server.stop()


async def test_an_idle_connection_outlives_the_clients_reuse_of_it() -> None:
    """uvicorn closed a connection idle for 5 s, as long as httpx keeps one for reuse: a
    request sent as the server closed it failed (2 of 40 reuses after 4.98-5.02 s, decision
    0128). One read-model lookup failing so refuses every subscribe of its batch as
    `unavailable` (8 of the fan-out benchmark's 20 clients, on a busy host). The client's pool
    must give a connection up first."""
    server = HealthServer("test", lambda: True, "127.0.0.1", 0)
    await server.start()
    request = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n"
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for idle_s in (0.0, 5.5):  # longer than uvicorn's default keep-alive
            await asyncio.sleep(idle_s)
            writer.write(request)
            await writer.drain()
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200") and b'"ok"' in body
        writer.close()
    finally:
        await server.stop()


def test_log_lines_are_json_with_the_event_context() -> None:
    formatter = JsonFormatter("script")
    with log_context(task_id="t-1", event_id="e-1", correlation_id=None):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
        record.attempt = 2
        line = json.loads(formatter.format(record))
    assert line["msg"] == "hello you"
    assert (line["service"], line["task_id"], line["event_id"], line["attempt"]) == (
        "script",
        "t-1",
        "e-1",
        2,
    )
    assert "correlation_id" not in line
    outside = json.loads(formatter.format(logging.LogRecord("x", 20, __file__, 1, "m", (), None)))
    assert "task_id" not in outside


async def test_http_clients_log_no_line_per_request(capfd: pytest.CaptureFixture[str]) -> None:
    """httpx logs each request with its whole URL at INFO: a service logs its warnings only."""
    server = HealthServer("test", lambda: True, "127.0.0.1", 0)
    await server.start()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    try:
        configure_logging("gateway")
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{server.port}/healthz?secret=s3cr3t"
            assert (await client.get(url)).status_code == 200
        logging.getLogger("ytmaker_gateway").info("still logged")
        logging.getLogger("httpx").warning("a client warning")
    finally:
        root.handlers[:], root.level = handlers, level
        for name, was in levels.items():
            logging.getLogger(name).setLevel(was)
        await server.stop()
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    assert [line["msg"] for line in lines] == ["still logged", "a client warning"]
    assert not any("s3cr3t" in line["msg"] for line in lines)
