"""The admin dashboard's rows for LangGraph node entries, cached embeddings and byte-store values."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils.html import escape
from django.utils.http import urlencode

from llmcache_django import CacheByteStore, cached_embeddings, llm_caches
from llmcache_django.core.cache import LLMCache
from llmcache_django.langgraph import LangGraphCache
from tests.test_admin import admin_client_, cache, client_for, html, make_staff, superuser, url  # noqa: F401  (fixtures)
from tests.test_embeddings import CountingEmbeddings

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_each_kind_used_and_each_node(admin_client_: Client) -> None:  # noqa: F811
    default_cache = llm_caches["default"]
    graph_cache: LangGraphCache = LangGraphCache(cache=default_cache)
    graph_cache.clear()
    writes = ("__pregel_ns_writes", "graph")
    graph_cache.set({((*writes, "upper"), "k1"): ("A", None), ((*writes, "upper"), "k2"): ("B", None)})
    graph_cache.set({((*writes, "reverse"), "k1"): ("C", None)})
    graph_cache.get([((*writes, "upper"), "k1"), ((*writes, "upper"), "missing")])
    graph_cache.side.flush_stats()
    CacheByteStore(cache=default_cache).clear()
    page = html(admin_client_.get(url("changelist")))
    row = re.search(r'<tr class="llmcache-kind-row" data-kind="langgraph">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r'<td class="numeric">([^<]*)</td>', row.group(1))
    assert [cells[0], *cells[2:]] == ["3", "1", "1", "3", "0"]  # entries, (size), hits, misses, writes, errors
    assert re.search(r'data-node="upper"><td>node <a href="[^"]+"><code>upper</code></a>', page)
    assert re.search(
        r'data-node="reverse"><td>node <a href="[^"]+"><code>reverse</code></a> \(oldest [^)]+\)</td><td class="numeric">1</td>',
        page,
    )
    assert 'data-kind="embeddings"' not in page  # never used here


# The list of node entries and of cached embeddings, and clearing one node or model

WRITES = ("__pregel_ns_writes", "graph")


def kind_url(view: str, kind: str, **query: str) -> str:
    address = url(view, "default", kind)
    return f"{address}?{urlencode(query)}" if query else address


@pytest.fixture(params=["database", "alias-django-redis", "alias-locmem"])
def server_cache(request: pytest.FixtureRequest, make_llm_cache: Callable[..., LLMCache]) -> LLMCache:
    """``LLM_CACHES["default"]``, empty: on the database cache (the test settings'), Redis or locmem."""
    if request.param == "database":
        cache = llm_caches["default"]
        cache.clear()
        LangGraphCache(cache=cache).clear()
        return cache
    return make_llm_cache(request.param)


def node_rows(page: str) -> list[str]:
    return re.findall(r'<tr class="llmcache-kind-entry" data-group="([^"]*)">', page)


def fill_nodes(upper: int = 2, reverse: int = 1) -> LangGraphCache:
    graph_cache: LangGraphCache = LangGraphCache("default")
    graph_cache.set({((*WRITES, "upper"), f"u{index}"): (f"U{index}", 600) for index in range(upper)})
    graph_cache.set({((*WRITES, "reverse"), f"r{index}"): (f"R{index}", None) for index in range(reverse)})
    return graph_cache


def test_node_entries_are_listed_with_namespace_age_and_size_and_filtered_by_node(
    admin_client_: Client,  # noqa: F811
    server_cache: LLMCache,
) -> None:
    fill_nodes()
    dashboard = html(admin_client_.get(url("changelist")))
    assert f'href="{escape(kind_url("kind_entries", "langgraph", node="upper"))}"><code>upper</code>' in dashboard
    assert f'href="{kind_url("kind_entries", "langgraph")}">LangGraph node entries</a>' in dashboard
    page = html(admin_client_.get(kind_url("kind_entries", "langgraph")))
    assert sorted(node_rows(page)) == ["reverse", "upper", "upper"]
    assert "<code>__pregel_ns_writes / graph / upper</code>" in page and "<code>u1</code>" in page
    assert "just now" in page and re.search(r">(9|10) min<", page)  # age, and the TTL left of 600 s
    assert re.search(r'<td class="numeric">\d+(\.\d)?\xa0bytes</td>', page)
    only_upper = html(admin_client_.get(kind_url("kind_entries", "langgraph", node="upper")))
    assert node_rows(only_upper) == ["upper", "upper"]
    assert '<option value="reverse">reverse</option>' in only_upper  # the other node stays selectable


def test_node_entries_are_paged_and_pages_keep_the_node_filter(admin_client_: Client, cache: LLMCache) -> None:  # noqa: F811
    LangGraphCache(cache=cache).clear()
    fill_nodes(upper=60, reverse=3)
    first = html(admin_client_.get(kind_url("kind_entries", "langgraph", node="upper")))
    assert len(node_rows(first)) == 50 and "60 entries" in first
    assert f'href="{escape(kind_url("kind_entries", "langgraph", node="upper", page="2"))}"' in first
    second = html(admin_client_.get(kind_url("kind_entries", "langgraph", node="upper", page="2")))
    assert node_rows(second) == ["upper"] * 10


def test_clearing_one_node_after_confirmation_keeps_the_other_and_is_logged(
    superuser: User,  # noqa: F811
    server_cache: LLMCache,
) -> None:
    graph_cache = fill_nodes()
    client = client_for(superuser, enforce_csrf_checks=True)
    clear = kind_url("kind_clear", "langgraph", node="upper")
    confirm = html(client.get(clear))
    assert "2 entries" in confirm and "node &#x27;upper&#x27;" in confirm
    assert len(graph_cache.get([((*WRITES, "upper"), "u0"), ((*WRITES, "upper"), "u1")])) == 2
    assert client.post(clear).status_code == 403  # no CSRF token: nothing goes
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', confirm)
    assert token is not None
    response = client.post(clear, {"csrfmiddlewaretoken": token.group(1)})
    assert response.status_code == 302 and response["Location"] == kind_url("kind_entries", "langgraph")
    assert graph_cache.get([((*WRITES, "upper"), "u0"), ((*WRITES, "upper"), "u1")]) == {}
    assert graph_cache.get([((*WRITES, "reverse"), "r0")]) == {((*WRITES, "reverse"), "r0"): "R0"}
    log = LogEntry.objects.get()
    assert log.user == superuser and "Deleted 2 entries" in log.change_message and "'upper'" in log.change_message


def test_node_entries_need_the_view_permission_and_clearing_the_clear_permission(cache: LLMCache) -> None:  # noqa: F811
    graph_cache = fill_nodes()
    nobody, viewer = client_for(make_staff("nobody")), client_for(make_staff("viewer", "view_llmcache"))
    assert nobody.get(kind_url("kind_entries", "langgraph")).status_code == 403
    assert viewer.get(kind_url("kind_entries", "langgraph")).status_code == 200
    for client in (nobody, viewer):
        assert client.get(kind_url("kind_clear", "langgraph", node="upper")).status_code == 403
        assert client.post(kind_url("kind_clear", "langgraph", node="upper")).status_code == 403
    assert len(graph_cache.get([((*WRITES, "upper"), "u0")])) == 1
    assert "llmcache-clear-kind" not in html(viewer.get(kind_url("kind_entries", "langgraph")))


def test_embeddings_are_listed_by_model_and_one_model_cleared(
    admin_client_: Client,  # noqa: F811
    server_cache: LLMCache,
) -> None:
    small, large = CountingEmbeddings(size=8), CountingEmbeddings(size=16)
    cached_small, cached_large = cached_embeddings(small), cached_embeddings(large)
    cached_small.clear()
    cached_small.embed_documents(["a", "b"])
    cached_large.embed_documents(["a"])
    cached_large.embed_query("q")
    page = html(admin_client_.get(kind_url("kind_entries", "embeddings")))
    assert sorted(node_rows(page)) == sorted([escape(cached_small.identity)] * 2 + [escape(cached_large.identity)] * 2)
    assert "<code>document, 8-dim float32</code>" in page and "<code>query, 16-dim float32</code>" in page
    only_large = html(admin_client_.get(kind_url("kind_entries", "embeddings", model=cached_large.identity)))
    assert node_rows(only_large) == [escape(cached_large.identity)] * 2
    clear = kind_url("kind_clear", "embeddings", model=cached_small.identity)
    assert "2 entries" in html(admin_client_.get(clear))
    assert admin_client_.post(clear).status_code == 302
    cached_small.embed_documents(["a", "b"])
    cached_large.embed_documents(["a"])
    assert small.batches == [["a", "b"], ["a", "b"]]  # its vectors went
    assert large.batches == [["a"], ["q"]]  # the other model's stayed


def test_a_store_that_cannot_list_says_so_on_the_kind_pages(admin_client_: Client, tmp_path: Path) -> None:  # noqa: F811
    file_cache = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    with override_settings(CACHES={"default": file_cache}, LLM_CACHES={"default": {"TTL": None}}):
        graph_cache: LangGraphCache = LangGraphCache("default")
        graph_cache.set({((*WRITES, "upper"), "k"): ("v", None)})
        page = html(admin_client_.get(kind_url("kind_entries", "langgraph")))
        assert "cannot list its keys" in page and "result_list" not in page
        assert admin_client_.get(kind_url("kind_clear", "langgraph", node="upper")).status_code == 404
        assert "an unknown number of entries" in html(admin_client_.get(kind_url("kind_clear", "langgraph")))
        assert admin_client_.post(kind_url("kind_clear", "langgraph")).status_code == 302
        assert graph_cache.get([((*WRITES, "upper"), "k")]) == {}


def test_an_unknown_kind_or_alias_is_404(admin_client_: Client, cache: LLMCache) -> None:  # noqa: F811
    assert admin_client_.get(url("kind_entries", "default", "bytes")).status_code == 404
    assert admin_client_.get(url("kind_entries", "nope", "langgraph")).status_code == 404
    assert admin_client_.post(url("kind_clear", "default", "pickle")).status_code == 404


def test_node_entries_sort_by_size_and_by_age(admin_client_: Client, cache: LLMCache) -> None:  # noqa: F811
    graph_cache: LangGraphCache = LangGraphCache(cache=cache)
    graph_cache.clear()
    graph_cache.set({((*WRITES, "small"), "s"): ("x", 600)})
    graph_cache.set({((*WRITES, "large"), "l"): ("x" * 5000, 600)})
    graph_cache.set({((*WRITES, "medium"), "m"): ("x" * 500, 600)})
    largest = html(admin_client_.get(kind_url("kind_entries", "langgraph", sort="largest")))
    assert node_rows(largest) == ["large", "medium", "small"]
    assert node_rows(html(admin_client_.get(kind_url("kind_entries", "langgraph", sort="smallest")))) == [
        "small",
        "medium",
        "large",
    ]
    newest, oldest = (
        node_rows(html(admin_client_.get(kind_url("kind_entries", "langgraph", sort=sort))))
        for sort in ("newest", "oldest")
    )
    assert newest == oldest[::-1] and sorted(newest) == ["large", "medium", "small"]
