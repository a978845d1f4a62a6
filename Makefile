# llmcache_django — `make demo` runs the example project, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv system-deps test lint format clean

help:
	@echo "make demo       run the example project on 127.0.0.1:8000 (no server needed)"
	@echo "make test       install what is missing, then run the test suite"
	@echo "make lint       ruff and mypy"
	@echo "make bench      benchmarks against langchain-community"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev,redis,memcached]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash .ci/system-deps.sh

test: venv system-deps
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy llmcache_django

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info

-include make/*.mk
