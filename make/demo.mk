# `make demo`: the example project on 127.0.0.1:8000 with no server and no API key, served
# under ASGI by uvicorn, so the async views run on the event loop and answers stream.
# Included by the main Makefile, which defines VENV, PY, PIP and the `venv` target.

VENV ?= .venv
PYTHON ?= python3
PY ?= $(VENV)/bin/python
DEMO_ADDR ?= 127.0.0.1:8000
DEMO_HOST = $(firstword $(subst :, ,$(DEMO_ADDR)))
DEMO_PORT = $(lastword $(subst :, ,$(DEMO_ADDR)))
DEMO_STAMP := $(VENV)/.installed-demo-stamp
DEMO_REDIS_PORT ?= 6379
DEMO_MEMCACHED_PORT ?= 11211
# The demo's SQLite file: migrations, the database cache table and the demo users.
DEMO_DB := example_project/db.sqlite3
DEMO_MIGRATIONS := $(wildcard llmcache_django/migrations/*.py)
DEMO_USERS_COMMAND := example_project/demo/management/commands/ensure_demo_superuser.py

.PHONY: demo demo-redis demo-memcached demo-stop

demo: $(DEMO_DB) | $(DEMO_STAMP)
	@echo "LLM cache: $${LLMCACHE_DEMO_BACKEND:-database}. Open http://$(DEMO_ADDR)/ and ask the same thing twice."
	@echo "Admin: http://$(DEMO_ADDR)/admin/ (demo / demo if make demo created it; local use only)."
	@echo "Sign in on the page as demo / demo or guest / guest: each user's answers are cached in their own scope."
	@$(PY) -m uvicorn example_project.asgi:application --host $(DEMO_HOST) --port $(DEMO_PORT)

# The package with the demo's ASGI server.
$(DEMO_STAMP): pyproject.toml | venv
	@$(PIP) install --quiet -e '.[demo,redis,memcached,prometheus]'
	@touch $@

# Made only when missing, when the package gains a migration or when the demo users change, so
# a second run starts at once.
# The cache table is created whatever LLMCACHE_DEMO_BACKEND says: `make demo` still works after
# a first `make demo-redis`.
$(DEMO_DB): $(DEMO_MIGRATIONS) $(DEMO_USERS_COMMAND) | venv
	@echo "Setting up $(DEMO_DB): migrations, the LLM cache table, the demo users."
	@$(PY) manage.py migrate --noinput --verbosity 0 || { rm -f $@; exit 1; }
	@LLMCACHE_DEMO_BACKEND=database $(PY) manage.py createcachetable || { rm -f $@; exit 1; }
	@$(PY) manage.py ensure_demo_superuser
	@touch $@

demo-redis: | venv
	@$(PY) -m example_project.local_servers redis $(DEMO_REDIS_PORT)
	@LLMCACHE_DEMO_BACKEND=redis LLMCACHE_DEMO_REDIS_URL=redis://127.0.0.1:$(DEMO_REDIS_PORT)/0 \
		$(MAKE) --no-print-directory demo

demo-memcached: | venv
	@$(PY) -m example_project.local_servers memcached $(DEMO_MEMCACHED_PORT)
	@LLMCACHE_DEMO_BACKEND=memcached LLMCACHE_DEMO_MEMCACHED_URL=127.0.0.1:$(DEMO_MEMCACHED_PORT) \
		$(MAKE) --no-print-directory demo

# Stops the servers demo-redis / demo-memcached started (not one that was already running).
demo-stop:
	@$(PYTHON) -m example_project.local_servers stop
