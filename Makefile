# The two README commands: `make run` and `make test`. Everything they need is installed from here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEPS_STAMP := $(VENV)/.stamp-deps
RHAI_STAMP := $(VENV)/.stamp-rhai
CLIENT_STAMP := $(VENV)/.stamp-client
RHAI_SOURCES := $(shell find rhai_py -path rhai_py/target -prune -o -type f \( -name '*.rs' -o -name '*.toml' -o -name 'Cargo.lock' -o -name '*.py' -o -name '*.pyi' \) -print 2>/dev/null)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast install system-deps lint migrate demo clean

# The embedded development server runs with DEBUG on unless told otherwise (no SECRET_KEY needed).
run migrate demo: export DEBUG ?= 1

## run: install, migrate SQLite, create the demo circle (or load CIRCLES=FILE), serve on $(HOST):$(PORT)
run: install migrate demo
	$(PY) manage.py runserver $(HOST):$(PORT)

## test: install, make sure redis-server is present, lint, run the whole pytest suite
test: install system-deps lint
	$(PY) -m pytest

## test-fast: the edit-test loop: unit, Rhai binding and client tests (seconds; no servers, nothing from Debian)
test-fast: install
	$(PY) -m pytest -q tests/unit tests/rhai tests/client

install: $(DEPS_STAMP) $(RHAI_STAMP) $(CLIENT_STAMP)

$(DEPS_STAMP): requirements.txt requirements-dev.txt
	@command -v cargo >/dev/null || { echo "A Rust toolchain (cargo) is needed to build rhai_py: https://rustup.rs"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $@

# The Rhai binding is rebuilt (release) only when its sources change.
$(RHAI_STAMP): $(DEPS_STAMP) $(RHAI_SOURCES)
	$(PIP) install -q ./rhai_py
	touch $@

# The client library and its `circles` command, editable so the tests use the tree's code.
$(CLIENT_STAMP): $(DEPS_STAMP) circles_client/pyproject.toml
	$(PIP) install -q -e ./circles_client
	touch $@

# Servers the integration and end-to-end tests start privately (on free ports, stopped after):
# Redis, PostgreSQL (the production database; Debian keeps its binaries off PATH), nginx for the
# production-layout test, and the headless browser the admin and console tests drive.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /bin/ip ] || missing="$$missing iproute2"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		echo "installing from Debian:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# mypy reads the binding's stubs from the installed `rhai`, hence the build first (pyproject.toml: [tool.mypy]).
lint: $(DEPS_STAMP) $(RHAI_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd rhai_py && cargo fmt --check
	cd rhai_py && cargo clippy --quiet --all-targets --features python -- -D warnings

migrate: install
	$(PY) manage.py migrate --noinput

# `make run CIRCLES=circles.toml` loads that file of circles (JSON or TOML) instead of the demo
# circle: idempotent, so every run applies the file's changes and runs no init script twice.
demo: migrate
ifdef CIRCLES
	$(PY) manage.py load_circles $(CIRCLES)
else
	$(PY) manage.py create_circle --demo
endif

clean:
	rm -rf $(VENV) rhai_py/target db.sqlite3 .pytest_cache .ruff_cache
