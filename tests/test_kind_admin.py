"""The admin dashboard's rows for LangGraph node entries, cached embeddings and byte-store values."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from llmcache_django import CacheByteStore, llm_caches
from llmcache_django.langgraph import LangGraphCache
from tests.test_admin import admin_client_, html, superuser, url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_each_kind_used_and_each_node(admin_client_: Client) -> None:  # noqa: F811
    cache = llm_caches["default"]
    graph_cache: LangGraphCache = LangGraphCache(cache=cache)
    graph_cache.clear()
    writes = ("__pregel_ns_writes", "graph")
    graph_cache.set({((*writes, "upper"), "k1"): ("A", None), ((*writes, "upper"), "k2"): ("B", None)})
    graph_cache.set({((*writes, "reverse"), "k1"): ("C", None)})
    graph_cache.get([((*writes, "upper"), "k1"), ((*writes, "upper"), "missing")])
    graph_cache.side.flush_stats()
    CacheByteStore(cache=cache).clear()
    page = html(admin_client_.get(url("changelist")))
    row = re.search(r'<tr class="llmcache-kind-row" data-kind="langgraph">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r'<td class="numeric">([^<]*)</td>', row.group(1))
    assert [cells[0], *cells[2:]] == ["3", "1", "1", "3", "0"]  # entries, (size), hits, misses, writes, errors
    assert 'data-node="upper"><td>node <code>upper</code>' in page
    assert re.search(
        r'data-node="reverse"><td>node <code>reverse</code> \(oldest [^)]+\)</td><td class="numeric">1</td>', page
    )
    assert 'data-kind="embeddings"' not in page  # never used here
