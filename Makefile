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
PYTEST_WORKERS ?= 3

.PHONY: demo test check install lint imports validate ui clean

demo: install
	$(BIN)/datagate demo --host $(DEMO_HOST) --port $(DEMO_PORT)

# The whole suite (SQLite and PostgreSQL, the end-to-end UI test), then the 15 slowest tests.
test: install lint imports validate
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=15

# The daily loop (about 4 minutes here): lint, import contracts, definitions, the fast unit tests.
check: install lint imports validate
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal -q -m "not slow and not e2e"

install: $(VENV)/.synced

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Re-sync whenever the lock file or pyproject changes; --frozen installs exactly the lock.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

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
