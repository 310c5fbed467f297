"""ytmaker's benchmarks. `make bench` runs `bench.delivery` (docs/performance.md)."""
