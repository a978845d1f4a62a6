"""The dashboard: one row per ``LLM_CACHES`` alias with what it holds and what it saved."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse

from llmcache_django.admin_views.common import admin_url, format_seconds, render_page, require_view
from llmcache_django.handler import llm_caches

if TYPE_CHECKING:
    from llmcache_django.admin import LLMCacheAdmin
    from llmcache_django.cache import LLMCache

logger = logging.getLogger("llmcache_django")
#: The dashboard counts entries and adds up their size by reading them, up to this many per alias.
SCAN_LIMIT = 10_000


@dataclass
class HitChart:
    """Hits against misses, as percentages of lookups for a two-part bar."""

    hits: int
    misses: int

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_percent(self) -> float:
        return 100 * self.hits / self.lookups if self.lookups else 0.0

    @property
    def miss_percent(self) -> float:
        return 100 - self.hit_percent if self.lookups else 0.0


@dataclass
class AliasSummary:
    """What the dashboard shows for one alias; ``error`` says what could not be read."""

    alias: str
    entries_url: str
    clear_url: str
    backend: str = ""
    location: str = ""
    namespace: str = ""
    ttl: str = ""
    can_list: bool = False
    entries: int | None = None
    size: int | None = None
    scan_capped: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    chart: HitChart | None = None
    time_saved: str = ""
    error: str = ""


def dashboard(model_admin: LLMCacheAdmin, request: HttpRequest) -> HttpResponse:
    """Every ``LLM_CACHES`` alias: backend, location, entries, size, hit ratio, savings."""
    require_view(model_admin, request)
    summaries = [summarize(model_admin, alias) for alias in llm_caches]
    return render_page(model_admin, request, "dashboard.html", "LLM caches", summaries=summaries, scan_limit=SCAN_LIMIT)


def summarize(model_admin: LLMCacheAdmin, alias: str) -> AliasSummary:
    """Read one alias's settings, entries and shared stats; a failure becomes ``error``."""
    summary = AliasSummary(
        alias=alias,
        entries_url=admin_url(model_admin, "entries", alias),
        clear_url=admin_url(model_admin, "clear", alias),
    )
    try:
        cache = llm_caches[alias]
        _describe(summary, cache)
        _read_stats(summary, cache)
        if summary.can_list:
            _tally(summary, cache)
    except Exception as exc:  # one unreachable server must not take the whole dashboard down
        logger.warning("LLM cache admin: cannot read alias %r: %s", alias, exc)
        summary.error = f"{type(exc).__name__}: {exc}"
    return summary


def ttl_text(ttl: float | None) -> str:
    """The alias's TTL for people: ``"1 h"``, or ``"never expires"``."""
    return "never expires" if ttl is None else format_seconds(ttl)


def _describe(summary: AliasSummary, cache: LLMCache) -> None:
    summary.backend = cache.backend_name
    summary.location = cache.store.describe()
    summary.namespace = cache.namespace
    summary.ttl = ttl_text(cache.ttl)
    summary.can_list = cache.can_list


def _read_stats(summary: AliasSummary, cache: LLMCache) -> None:
    summary.stats = cache.shared_stats()
    summary.chart = HitChart(hits=int(summary.stats.get("hits") or 0), misses=int(summary.stats.get("misses") or 0))
    summary.time_saved = format_seconds(summary.stats.get("seconds_saved") or 0.0)


def _tally(summary: AliasSummary, cache: LLMCache) -> None:
    count = size = 0
    for info in itertools.islice(cache.entries(), SCAN_LIMIT + 1):
        count += 1
        size += info.size
    summary.entries, summary.size = count, size
    summary.scan_capped = count > SCAN_LIMIT
