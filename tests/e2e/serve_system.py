"""The whole system for tests that are not pytest (the clients' Node tests):
`python -m tests.e2e.serve_system` starts every service (tests/e2e/system.py) on the broker of
KAFKA_BOOTSTRAP_SERVERS, or on a local broker it starts itself, prints one JSON line
`{"base", "progress", "jwt_secret", "logs"}` once all are ready, then obeys commands on stdin,
one per line, each answered `ok` or `error: …`:

    kill <service>     SIGKILL it
    start <service>    start it again and wait until it is ready
    logs               print the tail of every log (to stderr)

End of input (the test finished, or died) stops everything and deletes its topics; the logs
are kept in test-artifacts/system-logs/<prefix>/. Run by pytest or alone (`npm test` in a
client's package): without YTMAKER_INTERNAL_TOKEN it makes one, as tests/conftest.py does.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from tests.e2e.system import SERVICES, System
from tests.support.kafka import new_local_broker, unique_name
from ytmaker_dev.kafka import external_bootstrap_servers


def _command(system: System, line: str) -> str:
    verb, _, name = line.strip().partition(" ")
    if verb == "logs":
        print(system.log_tails(60), file=sys.stderr, flush=True)
        return "ok"
    if name not in SERVICES:
        return f"error: unknown service {name!r}"
    if verb == "kill":
        system.kill(name)
        return "ok"
    if verb == "start":
        system.start(name)
        system.wait_ready(system.base if name == "gateway" else system.progress)
        return "ok"
    return f"error: unknown command {verb!r}"


def _delete_topics(bootstrap: str, prefix: str) -> None:
    import asyncio

    from ytmaker_shared.kafka import delete_topics
    from ytmaker_shared.settings import ServiceSettings

    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix)
    asyncio.run(delete_topics(settings))


def main() -> int:
    os.environ.setdefault("YTMAKER_INTERNAL_TOKEN", secrets.token_urlsafe(32))
    tmp = Path(tempfile.mkdtemp(prefix="ytmaker-system-"))
    broker = None
    bootstrap = external_bootstrap_servers()
    if bootstrap is None:
        broker = new_local_broker(tmp / "kafka")
        broker.start(timeout=120)
        bootstrap = broker.bootstrap_servers
    prefix = unique_name("clients") + "."
    system = System(bootstrap, tmp, prefix)
    try:
        system.start_all()
        system.wait_ready(system.progress)
        system.wait_ready(system.base)
        ready = {
            "base": system.base,
            "progress": system.progress,
            "jwt_secret": system.env["YTMAKER_JWT_SECRET"],
            "logs": str(system.logs),
        }
        print(json.dumps(ready), flush=True)
        for line in sys.stdin:
            try:
                answer = _command(system, line)
            except Exception as exc:
                traceback.print_exc()
                answer = f"error: {exc}"
            print(answer, flush=True)
    finally:
        system.stop_all()
        try:
            _delete_topics(bootstrap, prefix)
        finally:
            if broker is not None:
                broker.stop()
            kept = Path(__file__).resolve().parents[2] / "test-artifacts" / "system-logs" / prefix
            shutil.copytree(system.logs, kept, dirs_exist_ok=True)  # for a failure's post-mortem
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
