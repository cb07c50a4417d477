# PufferPost: `make up` runs everything locally, `make test` runs the whole suite on real services.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUNTIME := $(VENV)/.runtime
VAR_DIR := $(or $(PUFFERPOST_VAR_DIR),var)
PYTEST_ARGS ?= -n 2
BENCH_ARGS ?=
DRILLS_ARGS ?=

.PHONY: up start down test lint format migrations-check bench drills services db clean compose-check

# What running needs (make up); the test and lint tools come on top (make test, make lint).
$(RUNTIME): requirements.txt
	@test -x $(PY) || { echo "Creating $(VENV) with $(PYTHON)..."; $(PYTHON) -m venv $(VENV); }
	@echo "Installing runtime dependencies from requirements.txt (the first run downloads ~40 packages)..."
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements.txt
	touch $(RUNTIME)

$(STAMP): $(RUNTIME) requirements-dev.txt
	@echo "Installing test and lint tools from requirements-dev.txt..."
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

services:
	@bin/ensure-services

db: $(RUNTIME) services
	@$(PY) bin/ensure-db

# Foreground; Ctrl-C (or SIGINT/SIGTERM to make) stops every child. The API key and staff login
# are printed once everything is ready, and kept in var/demo-credentials.txt.
up: db
	@$(PY) bin/check-python
	$(PY) manage.py migrate --noinput
	bin/run-local

# The same in the background (log in var/run-local.log); `make down` stops it.
start: db
	@if pid=$$(bin/run-local --running); then echo "The local stack is already running (pid $$pid); stop it with: make down" >&2; exit 1; fi
	@$(PY) bin/check-python
	$(PY) manage.py migrate --noinput
	@mkdir -p $(VAR_DIR) && rm -f $(VAR_DIR)/run-local.ready
	@RUN_LOCAL_DETACHED=1 setsid bin/run-local > $(VAR_DIR)/run-local.log 2>&1 < /dev/null &
	@for _ in $$(seq 1 240); do \
	  test -f $(VAR_DIR)/run-local.ready && break; \
	  grep -q "run-local: stopped" $(VAR_DIR)/run-local.log 2>/dev/null && { cat $(VAR_DIR)/run-local.log; exit 1; }; \
	  sleep 1; \
	done; \
	test -f $(VAR_DIR)/run-local.ready || { echo "Not ready after 4 minutes; see $(VAR_DIR)/run-local.log" >&2; exit 1; }
	@cat $(VAR_DIR)/demo-credentials.txt | sed '/^{/d'
	@echo "Running in the background (log: $(VAR_DIR)/run-local.log); make down stops it."

down:
	@bin/run-local --stop

test: $(STAMP) services
	@$(PY) bin/check-python
	@bin/ensure-test-tools
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrations-check: $(STAMP) db
	$(PY) manage.py makemigrations --check --dry-run

bench: $(STAMP) services
	$(PY) -m bench.run $(BENCH_ARGS)

# Fault drills on a private PostgreSQL and Redis the drill starts (and restarts) itself.
drills: $(STAMP)
	$(PY) -m drills.run $(DRILLS_ARGS)

# The compose install, built and run for real on a Docker engine of its own (host networking only,
# images from Debian packages), one message from the API to a loopback MX, then everything torn down.
compose-check: $(RUNTIME)
	bin/compose-check

clean:
	rm -rf $(VENV) var
