# The two commands: `make demo` and `make test`. Both build .venv from uv.lock when it is
# missing or stale, on a machine that has only Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 3000
# Three workers on two cores: the two end-to-end tests spend most of their minutes waiting
# on Dagster's daemon ticks, and start first (tests/conftest.py) so a third worker fills it.
# A fourth measured 640 s against 685 s: inside the noise, at more load (README, Tests).
PYTEST_WORKERS ?= 3
# The tests' files (SQLite warehouses, Dagster homes) live in memory where the machine has
# /dev/shm with room for them (under 100 MB at the end of a run; a container's default 64 MB
# is too small): their thousands of small commits then cost no disk flushes. Removed after.
TEST_TMP ?= $(shell test -w /dev/shm && [ "$$(df -Pm /dev/shm | awk 'NR==2 {print $$4}')" -ge 1024 ] \
	&& echo /dev/shm || echo $${TMPDIR:-/tmp})
PYTEST = tmp=$$(mktemp -d $(TEST_TMP)/datagate-tests.XXXXXX) && \
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal --basetemp=$$tmp

.PHONY: demo test check install bytecode lint imports validate ui clean

demo: install bytecode
	$(BIN)/datagate demo --host $(DEMO_HOST) --port $(DEMO_PORT)

# The whole suite (SQLite and PostgreSQL, the end-to-end UI test), then the 15 slowest tests.
test: install bytecode lint imports validate
	@$(PYTEST) --durations=15; rc=$$?; rm -rf $$tmp; exit $$rc

# The daily loop (about 4 minutes here): lint, import contracts, definitions, the fast unit tests.
check: install bytecode lint imports validate
	@$(PYTEST) -q -m "not slow and not e2e"; rc=$$?; rm -rf $$tmp; exit $$rc

install: $(VENV)/.synced

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Re-sync whenever the lock file or pyproject changes; --frozen installs exactly the lock.
# Bytecode is compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on this machine)
# every process would otherwise compile Dagster from source, each run worker and server
# of `dagster dev` included (importing the definitions: 5.4 s -> 3.0 s).
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

# Our own modules likewise (they change between runs: Python recompiles what is stale).
bytecode: install
	@$(BIN)/python -m compileall -q datagate_pipelines simulators tests benchmarks

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# No Dagster in the core, layers pointing down, no import cycles (pyproject.toml).
imports: install
	$(BIN)/lint-imports

validate: install
	@home=$$(mktemp -d) && cp deploy/dagster.yaml $$home/ && \
	  DAGSTER_HOME=$$home $(BIN)/dagster definitions validate -w workspace.yaml; \
	  rc=$$?; rm -rf $$home; exit $$rc

# The Dagster UI alone, on the persistent local instance.
ui: install
	@mkdir -p $(DAGSTER_HOME) && cp -n deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml || true
	@echo "Dagster UI: http://$(DEMO_HOST):$(DEMO_PORT)"
	$(BIN)/dagster dev -w workspace.yaml -h $(DEMO_HOST) -p $(DEMO_PORT)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache
