# PufferPost: `make up` runs everything locally, `make test` runs the whole suite on real services.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2
BENCH_ARGS ?=
DRILLS_ARGS ?=

.PHONY: up test lint format migrations-check bench drills services db clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

services:
	@bin/ensure-services

db: $(STAMP) services
	@$(PY) bin/ensure-db

up: db
	@$(PY) bin/check-python
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_workspace
	bin/run-local

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

migrations-check: db
	$(PY) manage.py makemigrations --check --dry-run

bench: $(STAMP) services
	$(PY) -m bench.run $(BENCH_ARGS)

# Fault drills on a private PostgreSQL and Redis the drill starts (and restarts) itself.
drills: $(STAMP)
	$(PY) -m drills.run $(DRILLS_ARGS)

clean:
	rm -rf $(VENV) var
