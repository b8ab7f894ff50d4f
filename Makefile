# The two commands: `make run` (the whole system, zero setup) and `make test` (lint + whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format install bench clean-run browser

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m config.stack up

# The browser tests (tests/e2e) drive Debian's chromium. Install it when missing and possible
# (root + apt-get); otherwise say so loudly: tests/e2e/conftest.py then skips them with a banner.
CHROMIUM ?= $(or $(CHROMIUM_PATH),$(shell command -v chromium 2>/dev/null),/usr/bin/chromium)
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium for the browser tests (apt-get, once)..."; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
	    || echo "!!! Could not install chromium: the browser tests (tests/e2e) will be SKIPPED."; \
	else \
	  echo "!!! chromium is missing and cannot be installed here (needs root and apt-get):"; \
	  echo "!!! the browser tests (tests/e2e) will be SKIPPED. Install Debian's chromium to run them."; \
	fi

test: $(STAMP) browser
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
