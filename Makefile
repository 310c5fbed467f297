# ytmaker: `make run` starts everything locally, `make test` runs every test.
# Both set up what they need first (the venv from requirements.lock, the Kafka jars).

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
PY := $(VENV)/bin/python
MEMBERS := shared $(wildcard services/*) dev clients/python tools/cli
SRC_DIRS := shared/src $(wildcard services/*/src) dev/src clients/python/src tools/cli/src bench

.PHONY: help setup system-deps kafka clients run test test-unit test-integration test-e2e lint format lock bench clean

help:
	@echo "make run    start Kafka and every service, submit a sample project, watch it live"
	@echo "make test   set up what is needed and run every test (unit, integration, e2e)"
	@echo "make lint   ruff format --check, ruff check, mypy --strict on src"
	@echo "make bench  delivery latency and CPU of ytmaker beside the first designs (docs/performance.md)"
	@echo "make lock   re-resolve dependencies into requirements.lock (no download addresses)"

setup: $(VENV)/.installed

# The venv follows the committed lock exactly; workspace members are installed editable.
$(VENV)/.installed: requirements.lock $(addsuffix /pyproject.toml,$(MEMBERS)) pyproject.toml
	@bash scripts/system-deps.sh
	@command -v uv >/dev/null || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	@test -x $(PY) || uv venv --quiet --python $(PYTHON) $(VENV)
	uv pip install --quiet --python $(PY) --require-hashes -r requirements.lock
	uv pip install --quiet --python $(PY) --no-deps $(addprefix -e ./,$(MEMBERS))
	@touch $@

system-deps:
	@bash scripts/system-deps.sh

kafka: setup
	$(PY) -m ytmaker_dev.kafka fetch

# The TypeScript SDK and the React component (clients/): npm ci from the committed lock, then
# tsc. Their Node tests run inside the e2e tier (tests/e2e/test_clients.py).
CLIENT_MANIFESTS := clients/package-lock.json clients/package.json $(wildcard clients/*/package.json)

clients: clients/node_modules/.installed
	cd clients && npm run build

clients/node_modules/.installed: $(CLIENT_MANIFESTS)
	cd clients && npm ci --no-audit --no-fund
	@touch $@

run: setup kafka
	$(PY) scripts/run_local.py

test: setup kafka clients
	@bash scripts/pytest.sh

test-unit: setup
	@bash scripts/pytest.sh tests/unit services -m "not kafka and not postgres and not e2e"

test-integration: setup kafka
	@bash scripts/pytest.sh tests/integration

test-e2e: setup kafka clients
	@bash scripts/pytest.sh tests/e2e

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict $(SRC_DIRS)

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# uv's own lock records download addresses, so it stays out of git; the committed lock is
# name==version with hashes only.
lock:
	uv lock
	uv export --quiet --format requirements-txt --all-groups --all-extras --no-emit-workspace --no-header \
		--output-file requirements.lock
	@# One lock per service image (deploy/docker/locks), the same pins as requirements.lock.
	@for s in $(notdir $(wildcard services/*)); do \
		uv export --quiet --frozen --format requirements-txt --package ytmaker-$$s --no-dev \
			--no-emit-workspace --no-header --output-file deploy/docker/locks/$$s.txt; done

# The delivery benchmark of docs/performance.md (ytmaker beside the first designs): tables,
# bench/results/<time>.json and plots. `make bench BENCH_ARGS=--tiny` for a quick look; the
# other scripts in bench/ run on their own (their docstrings say how).
bench: setup kafka
	$(PY) -m bench.delivery $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache clients/node_modules clients/*/dist
