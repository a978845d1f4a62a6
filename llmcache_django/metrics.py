"""Prometheus metrics of every LLM cache alias, on prometheus-client's default registry.

:class:`LLMCacheCollector` reads each built cache's in-process counters when Prometheus
scrapes, so counting costs the lookup nothing more; the lookup-latency histogram comes
from :mod:`llmcache_django.latency`. ``AppConfig.ready()`` registers the collector on
``prometheus_client.REGISTRY`` (what django-prometheus's ``/metrics`` serves) when
prometheus-client is installed; :func:`metrics_view` serves that registry without
django-prometheus.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.utils import floatToGoString
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without the extra
    raise ImportError(
        "llmcache_django.metrics needs prometheus-client: pip install 'llmcache-django[prometheus]'"
    ) from exc

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from llmcache_django import stats as stats_module
from llmcache_django.latency import BUCKETS, latencies

if TYPE_CHECKING:
    from llmcache_django.cache import LLMCache
    from llmcache_django.stats import Stats

#: Counters exported under another name: milliseconds become seconds, as Prometheus wants.
RENAMED = {"ms_saved": ("model_seconds_saved", 0.001)}
DESCRIPTIONS = {
    "hits": "Lookups answered from the cache.",
    "misses": "Lookups that found nothing usable (the model was called).",
    "writes": "Entries written.",
    "errors": "Failed server calls, unreadable entries and entries too large to write.",
    "skipped": "Calls not made while the cache left an unreachable server alone.",
    "coalesced": "Lookups that waited for another caller's model call instead of making their own.",
    "bytes_served": "Bytes of stored entries read by hits.",
    "tokens_saved": "Tokens the cached answers had cost, summed over hits.",
    "ms_saved": "Seconds of model time the hits spared.",
}
LOOKUP_SECONDS = "llmcache_lookup_seconds"
PAUSED = "llmcache_server_paused"


def counter_names() -> list[tuple[str, str, float]]:
    """``(stats counter, exported name without _total, scale)`` for every counter of :data:`stats.COUNTERS`."""
    names = []
    for counter in stats_module.COUNTERS:  # read each time: counters added later appear
        exported, scale = RENAMED.get(counter, (counter, 1.0))
        names.append((counter, f"llmcache_{exported}", scale))
    return names


class MonotonicCounts:
    """Per-alias totals that never go down, though a cache's counters are reset or it is rebuilt.

    A reset (``llm_cache_stats --reset``) or a rebuilt cache (settings changed) starts the
    in-process counters again from zero; what they count from then on is added, so the
    exported counters stay monotonic for the life of the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[weakref.ref[Stats], dict[str, int]]] = {}
        self._totals: dict[str, dict[str, int]] = {}

    def update(self, alias: str, stats: Stats) -> None:
        """Add what ``stats`` counted since it was last seen to ``alias``'s totals."""
        current = stats.snapshot()
        with self._lock:
            ref, last = self._seen.get(alias, (None, {}))
            if ref is None or ref() is not stats:
                last = {}
            totals, seen = self._totals.setdefault(alias, {}), {}
            for name in stats_module.COUNTERS:
                value, previous = int(current.get(name, 0)), last.get(name, 0)
                totals[name] = totals.get(name, 0) + (value - previous if value >= previous else value)
                seen[name] = value
            self._seen[alias] = (weakref.ref(stats), seen)

    def totals(self) -> dict[str, dict[str, int]]:
        """A copy of every alias's totals."""
        with self._lock:
            return {alias: dict(totals) for alias, totals in self._totals.items()}


def built_caches() -> Mapping[str, LLMCache]:
    """The ``LLM_CACHES`` aliases built in this process (none is built, or connected, here)."""
    from llmcache_django.handler import llm_caches

    return llm_caches.built()


class LLMCacheCollector:
    """A prometheus-client collector: per-alias counters, a paused gauge and the lookup latency."""

    def __init__(self, caches: Callable[[], Mapping[str, LLMCache]] = built_caches) -> None:
        self.caches = caches
        self.counts = MonotonicCounts()

    def describe(self) -> Iterator[Metric]:
        """The metric families :meth:`collect` yields, without samples (for the registry)."""
        yield from self._counter_families().values()
        yield self._paused_family()
        yield self._latency_family()

    def collect(self) -> Iterator[Metric]:
        """Every metric, read from the caches as they are now."""
        caches = self.caches()
        for alias, cache in caches.items():
            if cache.stats is not None:
                self.counts.update(alias, cache.stats)
        yield from self._counters()
        yield self._paused(caches)
        yield self._latency()

    def _counters(self) -> Iterator[Metric]:
        families = self._counter_families()
        for alias, totals in sorted(self.counts.totals().items()):
            for counter, exported, scale in counter_names():
                families[exported].add_metric([alias], totals.get(counter, 0) * scale)
        yield from families.values()

    def _counter_families(self) -> dict[str, CounterMetricFamily]:
        return {
            exported: CounterMetricFamily(
                exported, DESCRIPTIONS.get(counter, counter.replace("_", " ")), labels=["alias"]
            )
            for counter, exported, _ in counter_names()
        }

    def _paused(self, caches: Mapping[str, LLMCache]) -> GaugeMetricFamily:
        family, now = self._paused_family(), time.monotonic()
        for alias, cache in sorted(caches.items()):
            family.add_metric([alias], 1.0 if now < cache.store.paused_until else 0.0)
        return family

    def _paused_family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            PAUSED, "1 while the cache leaves an unreachable server alone (fail-open back-off).", labels=["alias"]
        )

    def _latency(self) -> HistogramMetricFamily:
        family = self._latency_family()
        for alias, latency in sorted(latencies.items()):
            if not alias:
                continue  # caches made without an alias (the compat classes) are not exported
            counts, total = latency.snapshot()
            family.add_metric([alias], cumulative_buckets(counts), total)
        return family

    def _latency_family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(
            LOOKUP_SECONDS, "Time a lookup took, server round trip and decoding included.", labels=["alias"]
        )


def cumulative_buckets(counts: list[int]) -> list[tuple[str, float]]:
    """Prometheus ``le`` buckets from per-bucket counts (the last one is ``+Inf``)."""
    buckets, running = [], 0
    for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
        running += count
        buckets.append((floatToGoString(bound), float(running)))
    return buckets


_installed: dict[int, LLMCacheCollector] = {}
_install_lock = threading.Lock()


def install(registry: CollectorRegistry = REGISTRY) -> LLMCacheCollector:
    """Register the collector on ``registry`` (the default one unless given), once."""
    with _install_lock:
        if id(registry) not in _installed:
            collector = LLMCacheCollector()
            registry.register(collector)
            _installed[id(registry)] = collector
        return _installed[id(registry)]


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve the default registry in the format the scraper asks for, like django-prometheus's ``/metrics``."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(REGISTRY), content_type=content_type)
