"""`python -m ytmaker_progress fold` runs the fold; `... api` the read side (the read model's
sink, the internal API, the ETA projector, the stall watch, the cleanup); `... serve` (the
default) both in one process. `make run` and the manifests run `fold` and `api` as separate
processes (decision 0039). `... rebuild --into URL [--compare URL]` rebuilds a read model."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ytmaker_progress.main import ProgressService
from ytmaker_progress.settings import ProgressSettings
from ytmaker_shared.service import run_service

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


if __name__ == "__main__":
    main()
