# llmcache_django — `make demo` runs the example project, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp

.PHONY: help venv venv-dev system-deps test lint format clean readme-figures

help:
	@echo "make demo       run the example project on 127.0.0.1:8000 (no server needed)"
	@echo "make demo-redis / make demo-memcached   the same on a local Redis / memcached"
	@echo "make demo-stop  stop the redis-server / memcached those two started"
	@echo "make test       install what is missing, then run the test suite (4 workers; TEST_WORKERS=0: one process)"
	@echo "make lint       ruff, mypy and the import layers (import-linter)"
	@echo "make format     ruff's fixes and formatting, in place"
	@echo "make bench      benchmarks against langchain-community"
	@echo "make readme-figures   rewrite README.md's benchmark figures from benchmarks/results"
	@echo "make clean      remove .venv and build files"

readme-figures: venv
	$(PY) -m benchmarks.readme_figures

# The package with its server libraries: all `make demo` needs.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[redis,memcached]'
	touch $(STAMP)

# Plus the test, lint and browser tools.
$(DEV_STAMP): $(STAMP)
	$(PIP) install --quiet -e '.[dev,redis,memcached,valkey]'
	touch $(DEV_STAMP)

venv: $(STAMP)

venv-dev: $(DEV_STAMP)

system-deps:
	@bash .ci/system-deps.sh

# The suite mostly waits on servers and subprocesses: 4 workers keep 2 cores busy. Each worker
# starts its own session servers; a module whose servers are costly runs on one worker
# (`xdist_group`). `make test TEST_WORKERS=0` runs it in this process alone.
TEST_WORKERS ?= 4

test: venv-dev system-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_ARGS)

lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy llmcache_django example_project
	$(VENV)/bin/lint-imports

format: venv-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info

-include make/*.mk
