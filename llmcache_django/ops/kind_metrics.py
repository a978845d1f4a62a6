"""Prometheus counters of the other kinds of entry on an alias (LangGraph nodes, embeddings,
byte store): ``llmcache_kind_<counter>_total{alias, kind}``, from each kind's shared counters."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily

from llmcache_django.integrations.side_cache import SideCache

if TYPE_CHECKING:
    from llmcache_django.core.cache import LLMCache

#: The sub-namespaces exported (see :mod:`llmcache_django.management.commands._kinds`).
KINDS = ("langgraph", "embeddings", "bytes")
#: The counters exported per kind; for embeddings, hits are texts served and misses texts embedded.
KIND_COUNTERS = ("hits", "misses", "writes", "errors", "skipped")


def kind_families(caches: Mapping[str, LLMCache]) -> Iterator[CounterMetricFamily]:
    """One family per counter, a sample per alias and kind in use; an alias whose server is
    being left alone, or cannot be read, is left out of this scrape."""
    families = empty_families()
    for alias, cache in sorted(caches.items()):
        if cache.stats is None or time.monotonic() < cache.store.paused_until:
            continue
        for kind in KINDS:
            try:
                counts = SideCache(kind, cache).shared_stats()
            except Exception:  # the scrape must answer
                break
            if any(counts[name] for name in KIND_COUNTERS):
                for name in KIND_COUNTERS:
                    families[name].add_metric([alias, kind], counts[name])
    yield from families.values()


def empty_families() -> dict[str, CounterMetricFamily]:
    """The families :func:`kind_families` fills, without samples."""
    return {
        name: CounterMetricFamily(
            f"llmcache_kind_{name}",
            f"{name.capitalize()} of LangGraph node entries, embeddings or byte-store values.",
            labels=["alias", "kind"],
        )
        for name in KIND_COUNTERS
    }
