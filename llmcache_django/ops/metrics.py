"""Prometheus metrics of every LLM cache alias, on prometheus-client's default registry.

:class:`LLMCacheCollector` serves each built cache's *shared* counters (the ones stored in
the backend, which every process adds to), so the totals are the same whichever worker
answers the scrape; counting costs the lookup nothing more. While the server cannot be
read, it serves the last shared values it read plus what this process counted since. The
lookup-latency histogram (from :mod:`llmcache_django.core.latency`) is this process's own. ``AppConfig.ready()`` registers the collector on
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
        "llmcache_django.ops.metrics needs prometheus-client: pip install 'llmcache-django[prometheus]'"
    ) from exc

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from llmcache_django.core import stats as stats_module
from llmcache_django.core.latency import BUCKETS, latencies
from llmcache_django.ops.kind_metrics import empty_families, kind_families
from llmcache_django.ops.savings_metrics import savings_windows, window_families

if TYPE_CHECKING:
    from llmcache_django.core.cache import LLMCache
    from llmcache_django.core.stats import Stats

#: Counters exported under another name: milliseconds become seconds, as Prometheus wants.
RENAMED = {"ms_saved": ("model_seconds_saved", 0.001)}
DESCRIPTIONS = {
    "hits": "Lookups answered from the cache.",
    "misses": "Lookups that found nothing usable (the model was called).",
    "writes": "Entries written.",
    "errors": "Failed server calls, unreadable entries and entries too large to write.",
    "skipped": "Calls not made while the cache left an unreachable server alone.",
    "coalesced": "Lookups that waited for another caller's model call instead of making their own.",
    "refreshed": "Lookups not answered from the cache by request (refresh, or an entry older than max_age).",
    "bypassed": "Lookups and writes skipped by request (off, no-store).",
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


class SharedCounts:
    """Per-alias shared counters as of the last scrape, and what to serve when they cannot be read.

    Each scrape adds this process's pending counts to the shared counters and reads them. When
    the server is down (or the cache is leaving it alone), an alias's values are the last ones
    read plus what this process counted since, so an outage's errors show at once and nothing
    goes backwards until the server answers again. ``reset_stats()`` zeroes the shared
    counters for every worker alike: Prometheus reads that as a counter reset.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: alias -> (the shared values last read, this process's Stats and its values then)
        self._last: dict[str, tuple[dict[str, int], weakref.ref[Stats] | None, dict[str, int]]] = {}
        self._totals: dict[str, dict[str, int]] = {}

    def update(self, alias: str, cache: LLMCache) -> None:
        """Read ``alias``'s shared counters, or make do without them while its server is down."""
        stats = cache.stats
        assert stats is not None
        try:
            shared = self._read(cache)
        except Exception:  # the scrape must answer: serve what this process knows
            totals = self._without_server(alias, stats)
        else:
            totals = {name: int(shared.get(name, 0)) for name in stats_module.COUNTERS}
            with self._lock:
                self._last[alias] = (totals, weakref.ref(stats), _counts(stats))
        with self._lock:
            self._totals[alias] = totals

    def totals(self) -> dict[str, dict[str, int]]:
        """A copy of every alias's totals as of the last update."""
        with self._lock:
            return {alias: dict(totals) for alias, totals in self._totals.items()}

    def _read(self, cache: LLMCache) -> dict[str, int]:
        if time.monotonic() < cache.store.paused_until:
            raise ConnectionError("the cache is leaving its server alone")
        shared = cache.shared_stats()  # this process's pending counts are added first
        if cache.store.unreachable_nodes():  # a pool answers a failed node's counters with zeros
            raise ConnectionError("a node is not answering")
        return shared

    def _without_server(self, alias: str, stats: Stats) -> dict[str, int]:
        with self._lock:
            shared, ref, then = self._last.get(alias, ({}, None, {}))
        if ref is None or ref() is not stats:  # a rebuilt cache: its counts are all new
            then = {}
        now = _counts(stats)
        return {name: shared.get(name, 0) + max(0, now[name] - then.get(name, 0)) for name in stats_module.COUNTERS}


def _counts(stats: Stats) -> dict[str, int]:
    snapshot = stats.snapshot()
    return {name: int(snapshot.get(name, 0)) for name in stats_module.COUNTERS}


def configured_caches() -> Mapping[str, LLMCache]:
    """Every ``LLM_CACHES`` alias, built on the first scrape if this worker has not used it
    yet: its shared counters are the same in every worker. An alias whose settings are wrong
    is left out (the system checks name the mistake)."""
    from llmcache_django.backends.handler import configured_aliases, llm_caches

    caches = {}
    for alias in configured_aliases():
        try:
            caches[alias] = llm_caches[alias]
        except Exception:  # a settings mistake must not take /metrics down
            continue
    return caches


class LLMCacheCollector:
    """A prometheus-client collector: per-alias counters, a paused gauge and the lookup latency."""

    def __init__(self, caches: Callable[[], Mapping[str, LLMCache]] = configured_caches) -> None:
        self.caches = caches
        self.counts = SharedCounts()

    def describe(self) -> Iterator[Metric]:
        """The metric families :meth:`collect` yields, without samples (for the registry)."""
        yield from self._counter_families().values()
        yield from empty_families().values()
        yield from window_families().values()
        yield self._paused_family()
        yield self._latency_family()

    def collect(self) -> Iterator[Metric]:
        """Every metric, read from the caches as they are now."""
        caches = self.caches()
        for alias, cache in caches.items():
            if cache.stats is not None:
                self.counts.update(alias, cache)
        yield from self._counters()
        yield from kind_families(caches)
        yield from savings_windows(caches)
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
