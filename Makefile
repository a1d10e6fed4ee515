# Two commands: `make run` starts the local fleet, `make test` runs the suite.
# Both install what they need: Debian packages where missing, Python packages into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# command -> Debian package that provides it
DEBIAN_NEEDS := redis-server:redis-server

.PHONY: run test lint docs deps system-deps clean

run: deps
	$(VENV)/bin/imagefleet up

test: deps
	$(VENV)/bin/pytest

lint: deps
	$(VENV)/bin/ruff check .

docs: deps  # regenerate the README's operation reference from the registry
	$(VENV)/bin/imagefleet docs --readme README.md

deps: system-deps $(STAMP)

system-deps:
	@missing=""; \
	for need in $(DEBIAN_NEEDS); do \
	  command -v "$${need%%:*}" >/dev/null 2>&1 || missing="$$missing $${need##*:}"; \
	done; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "imagefleet needs Python >= 3.11 (set PYTHON=...)"; exit 1; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
