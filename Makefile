# The two commands: `make run` (the whole system, zero setup) and `make test` (lint + whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format install bench clean-run

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m config.stack up

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	SECRET_KEY=$${SECRET_KEY:-insecure-test-only-key} $(PY) -m config.stack exec --run-dir .run/test -- $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean-run:
	rm -rf .run
