"""``clear_llm_cache --langgraph/--embeddings/--byte-store`` and ``llm_cache_stats`` for those kinds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from llmcache_django import CacheByteStore, cached_embeddings
from llmcache_django.core.cache import LLMCache
from llmcache_django.langgraph import LangGraphCache
from tests.conftest import kind_param
from tests.helpers import text_generations
from tests.test_embeddings import CountingEmbeddings
from tests.test_langgraph import LLM_STRING, build_graph
from tests.test_single_flight_database import database_llm_cache, file_database  # noqa: F401  (fixtures)

KINDS = [kind_param(kind) for kind in ("alias-django-redis", "alias-pymemcache", "alias-database")]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture(params=KINDS)
def alias_cache(request: pytest.FixtureRequest, make_llm_cache: Callable[..., LLMCache]) -> LLMCache:
    if request.param == "alias-database":  # in a SQLite file: see tests/test_langgraph.py's llm_cache
        return request.getfixturevalue("database_llm_cache")(False)  # type: ignore[no-any-return]
    return make_llm_cache(request.param)


def test_clearing_one_node_keeps_the_other_nodes_and_the_llm_entries(alias_cache: LLMCache) -> None:
    calls: Counter[str] = Counter()
    graph = build_graph(LangGraphCache("default"), calls)
    graph.invoke({"text": "vienna"})
    alias_cache.update("prompt", LLM_STRING, text_generations("answer"))
    assert run("clear_llm_cache", "--langgraph", "--namespace", "upper", "--dry-run") == (
        "Would clear 1 LangGraph node entries of node 'upper' from alias 'default'.\n"
    )
    assert run("clear_llm_cache", "--langgraph", "--namespace", "upper", "--noinput") == (
        "Cleared 1 LangGraph node entries of node 'upper' from alias 'default'.\n"
    )
    graph.invoke({"text": "vienna"})
    assert calls == {"upper": 2, "reverse": 1}
    assert alias_cache.lookup("prompt", LLM_STRING) == text_generations("answer")
    run("clear_llm_cache", "--langgraph", "--noinput")
    graph.invoke({"text": "vienna"})
    assert calls == {"upper": 3, "reverse": 2}
    assert alias_cache.lookup("prompt", LLM_STRING) == text_generations("answer")


def test_clearing_embeddings_and_the_byte_store_keeps_the_rest(alias_cache: LLMCache) -> None:
    model = CountingEmbeddings(size=4)
    embedder = cached_embeddings(model)
    byte_store = CacheByteStore()
    embedder.embed_documents(["a", "b"])
    byte_store.mset([("k", b"v")])
    alias_cache.update("prompt", LLM_STRING, text_generations("answer"))
    run("clear_llm_cache", "--byte-store", "--noinput")
    assert byte_store.mget(["k"]) == [None]
    embedder.embed_documents(["a", "b"])
    assert model.batches == [["a", "b"]]
    run("clear_llm_cache", "--embeddings", "--noinput")
    embedder.embed_documents(["a", "b"])
    assert model.batches == [["a", "b"], ["a", "b"]]
    assert alias_cache.lookup("prompt", LLM_STRING) == text_generations("answer")


@pytest.mark.parametrize("kind", [kind_param("alias-locmem")])
def test_namespace_needs_langgraph(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    make_llm_cache(kind)
    with pytest.raises(CommandError, match="use it with --langgraph"):
        run("clear_llm_cache", "--namespace", "upper", "--noinput")


@pytest.mark.parametrize("kind", [kind_param("alias-locmem")])
def test_stats_show_each_kind_used(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    make_llm_cache(kind)
    graph_cache: LangGraphCache = LangGraphCache("default")
    graph = build_graph(graph_cache, Counter())
    graph.invoke({"text": "a"})
    graph.invoke({"text": "a"})
    graph_cache.side.shared_stats()  # this process's counts, shared now rather than within a second
    output = run("llm_cache_stats")
    assert "default (langgraph): 2 hits, 2 misses, 2 writes, 0 errors" in output
    assert "(embeddings)" not in output


@pytest.mark.urls("tests.ops_urls")
@pytest.mark.parametrize("kind", [kind_param("alias-django-redis")])
def test_prometheus_serves_each_kind_used(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    from tests.test_metrics import scrape, value

    make_llm_cache(kind)
    embedder = cached_embeddings(CountingEmbeddings(size=4))
    embedder.embed_documents(["a", "b"])
    embedder.embed_documents(["a", "c"])
    embedder.side.shared_stats()  # this process's counts, shared now rather than within a second
    samples = scrape()
    counts = {
        name: value(samples, f"llmcache_kind_{name}_total", alias="default", kind="embeddings")
        for name in ("hits", "misses", "writes", "errors")
    }
    assert counts == {"hits": 1, "misses": 3, "writes": 3, "errors": 0}
    assert value(samples, "llmcache_kind_hits_total", alias="default", kind="langgraph") == 0


def test_nothing_but_the_langgraph_module_imports_langgraph() -> None:
    import subprocess
    import sys

    code = (
        "import django, sys; from django.conf import settings; "
        "settings.configure(INSTALLED_APPS=['llmcache_django'], LLM_CACHE_SET_GLOBAL=False); django.setup(); "
        "import llmcache_django.management.commands.clear_llm_cache, llmcache_django.management.commands.llm_cache_stats; "
        "from llmcache_django import cached_embeddings, CacheByteStore; import llmcache_django.integrations.node_entries; "
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'langgraph'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
