"""ytmaker's benchmarks. `make bench` runs `bench.delivery` (docs/performance.md).

Every benchmark talks to what it started on this machine: never through a proxy the
environment names (`HTTP(S)_PROXY`)."""

import os

from ytmaker_dev.ports import exempt_loopback_from_proxies

exempt_loopback_from_proxies(os.environ)
