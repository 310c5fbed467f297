"""`python -m ytmaker_progress fold` runs the fold; `... api` the read side (the read model's
sink, the internal API, the ETA projector, the stall watch, the cleanup); `... serve` (the
default) both in one process. `make run` and the manifests run `fold` and `api` as separate
processes (decision 0039). `... rebuild --into URL [--compare URL]` rebuilds a read model."""

from ytmaker_progress.main import main

if __name__ == "__main__":
    main()
