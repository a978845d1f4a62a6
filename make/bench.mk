# `make bench`: llmcache_django vs langchain-community vs the bare client (and single-flight's
# burst and overhead), on throw-away redis-server and memcached processes (see benchmarks/).
# Results go to benchmarks/results/.
# Pass options through BENCH_ARGS, e.g. `make bench BENCH_ARGS=--quick`. Needs redis-server and
# memcached on PATH (not chromium, so no `system-deps`); the run says how to install them.
BENCH_STAMP := $(VENV)/.bench-stamp
BENCH_ARGS ?=

.PHONY: bench

$(BENCH_STAMP): pyproject.toml | venv
	$(PY) -m pip install --quiet -e '.[bench,langgraph,demo]'
	touch $(BENCH_STAMP)

bench: venv $(BENCH_STAMP)
	$(PY) -m benchmarks.run $(BENCH_ARGS)
	$(PY) -m benchmarks.cluster $(BENCH_ARGS)
	$(PY) -m benchmarks.agents $(BENCH_ARGS)
	$(PY) -m benchmarks.graph_embeddings
