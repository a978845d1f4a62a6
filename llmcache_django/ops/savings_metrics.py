"""Prometheus gauges of each alias's last 24 hours and 30 days (money saved where priced).

The lifetime counters are Prometheus counters (:mod:`llmcache_django.ops.metrics`); these are
gauges over the shared hourly and daily buckets, with a ``window`` label (``24h``, ``30d``), so
every worker serves the same values. ``llmcache_window_cost_saved`` appears only with
``LLM_CACHE_PRICES``: no price, no money.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily

from llmcache_django.ops.savings import SavingsPoint, savings_of

if TYPE_CHECKING:
    from llmcache_django.core.cache import LLMCache

logger = logging.getLogger("llmcache_django")
#: exported name -> (description, the SavingsPoint field)
WINDOW_GAUGES = {
    "llmcache_window_hits": ("Lookups answered from the cache in the window.", "hits"),
    "llmcache_window_misses": ("Lookups that called the model in the window.", "misses"),
    "llmcache_window_tokens_saved": ("Tokens the hits of the window spared.", "tokens_saved"),
    "llmcache_window_model_seconds_saved": ("Seconds of model time the hits of the window spared.", "seconds_saved"),
    "llmcache_window_cost_saved": (
        "What the hits of the window spared, at LLM_CACHE_PRICES (per million tokens).",
        "cost_saved",
    ),
}
#: window label -> which series and its total
WINDOWS = {"24h": "hourly", "30d": "daily"}


def window_families() -> dict[str, GaugeMetricFamily]:
    """The gauge families, without samples."""
    return {
        name: GaugeMetricFamily(name, description, labels=["alias", "window"])
        for name, (description, _) in WINDOW_GAUGES.items()
    }


def savings_windows(caches: Mapping[str, LLMCache]) -> Iterator[GaugeMetricFamily]:
    """Every alias's window gauges; an alias whose server cannot be read is left out of them."""
    families = window_families()
    for alias, cache in sorted(caches.items()):
        if time.monotonic() < cache.store.paused_until:
            continue  # the cache is leaving its server alone: so does the scrape
        try:
            savings = savings_of(cache)
        except Exception as exc:  # the scrape must answer; the counters above say what they can
            logger.info("LLM cache %r: savings over time not read: %s: %s", alias, type(exc).__name__, exc)
            continue
        if savings is None:
            continue
        for window, points in WINDOWS.items():
            _add_samples(families, [alias, window], savings.total(points))
    yield from (family for family in families.values() if family.samples or family.name != "llmcache_window_cost_saved")


def _add_samples(families: dict[str, GaugeMetricFamily], labels: list[str], total: SavingsPoint) -> None:
    for name, (_, field_name) in WINDOW_GAUGES.items():
        value = getattr(total, field_name)
        if value is not None:
            families[name].add_metric(labels, float(value))
