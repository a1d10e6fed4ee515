# Two commands: `make run` starts the local fleet, `make test` runs the suite.
# Both install what they need: Debian packages where missing, Python packages into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages the fleet and its tests run on: Redis, Tesseract with the OCR roster's
# language data, Chromium for from-html, fonts (CJK included) for rendered text, and
# docker-compose (only to validate compose.yaml; no engine is needed).
OCR_LANGS := eng spa fra deu ita por nld pol rus chi-sim
DEBIAN_PACKAGES := redis-server python3-venv tesseract-ocr \
  $(addprefix tesseract-ocr-,$(OCR_LANGS)) chromium fonts-dejavu-core fonts-noto-cjk \
  docker-compose redis-sentinel

.PHONY: run test lint docs bench chaos load deps system-deps clean

run: deps
	$(VENV)/bin/imagefleet up

test: deps
	$(VENV)/bin/pytest

lint: deps
	$(VENV)/bin/ruff check .

bench: deps  # prints a table and writes bench/results.json
	$(VENV)/bin/python -m bench.run

chaos: deps  # 1,000 jobs under SIGKILLs and a Redis restart; exits 1 if anything was lost
	$(VENV)/bin/python -m tests.chaos --jobs 1000 --kill-every 1

load: deps  # 60 s of sustained submissions against a low queue limit: push-back, p99, errors
	$(VENV)/bin/python -m tests.load --seconds 60

docs: deps  # regenerate the README's operation reference from the registry
	$(VENV)/bin/imagefleet docs --readme README.md

deps: system-deps $(STAMP)

system-deps:
	@missing=""; \
	for pkg in $(DEBIAN_PACKAGES); do \
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

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
