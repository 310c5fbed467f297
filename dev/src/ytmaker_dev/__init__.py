"""ytmaker's development tools: what `make run`, the tests and the benchmarks share, and no
service image ships."""
