"""The dashboard: one row per ``LLM_CACHES`` alias with what it holds and what it saved."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse

from llmcache_django.admin_views.common import (
    admin_url,
    error_text,
    format_seconds,
    render_page,
    require_view,
    server_error_text,
)
from llmcache_django.admin_views.kind_entries import LISTED_KINDS
from llmcache_django.admin_views.kinds import KindSummary, kind_summaries
from llmcache_django.admin_views.savings_chart import savings_sections
from llmcache_django.admin_views.scopes import ScopeRow, ScopeTally, scope_rows
from llmcache_django.backends.handler import llm_caches
from llmcache_django.stores.base import Node

if TYPE_CHECKING:
    from llmcache_django.admin import LLMCacheAdmin
    from llmcache_django.core.cache import LLMCache

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
class ModelSummary:
    """One model's share of an alias: entries and bytes (stored, and before compression)."""

    model: str
    entries: int = 0
    size: int = 0
    original_size: int = 0
    entries_url: str = ""


#: Counters shown under the hit ratio when they are not zero (writes and errors always).
ACTIVITY = (
    ("writes", "write", "writes"),
    ("errors", "error", "errors"),
    ("skipped", "skipped call", "skipped calls"),
    ("refreshed", "refreshed call", "refreshed calls"),
    ("bypassed", "bypassed call", "bypassed calls"),
)
COALESCED = ("coalesced", "coalesced call", "coalesced calls")


@dataclass
class AliasSummary:
    """What the dashboard shows for one alias; ``error`` says what could not be read."""

    alias: str
    entries_url: str
    clear_url: str
    reset_url: str = ""
    backend: str = ""
    location: str = ""
    namespace: str = ""
    ttl: str = ""
    can_list: bool = False
    entries: int | None = None
    size: int | None = None
    original_size: int | None = None
    models: list[ModelSummary] = field(default_factory=list)
    activity: list[str] = field(default_factory=list)
    scan_capped: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    chart: HitChart | None = None
    time_saved: str = ""
    error: str = ""
    #: Servers of a pool the client treats as down; their entries miss until they are back.
    down_nodes: list[str] = field(default_factory=list)
    #: Each server of a many-server store (a memcached pool, a Redis Cluster), measured.
    nodes: list[Node] = field(default_factory=list)

    @property
    def pool_nodes(self) -> list[Node]:
        """The servers of a memcached pool (shown as a table of entries, items and bytes)."""
        return [node for node in self.nodes if node.role == "server"] if len(self.nodes) > 1 else []

    @property
    def cluster_nodes(self) -> list[Node]:
        """The primaries and replicas of a Redis Cluster (one line each)."""
        return [node for node in self.nodes if node.role != "server"]

    #: LangGraph node entries, cached embeddings and byte-store values used on the alias.
    kinds: list[KindSummary] = field(default_factory=list)
    #: Entries and hits per scope (empty when nothing was written or hit in a scope).
    scopes: list[ScopeRow] = field(default_factory=list)


def dashboard(model_admin: LLMCacheAdmin, request: HttpRequest) -> HttpResponse:
    """Every ``LLM_CACHES`` alias: backend, location, entries, size, hit ratio, savings."""
    require_view(model_admin, request)
    summaries = [summarize(model_admin, alias) for alias in llm_caches]
    return render_page(
        model_admin,
        request,
        "dashboard.html",
        "LLM caches",
        summaries=summaries,
        scan_limit=SCAN_LIMIT,
        savings_sections=savings_sections([summary.alias for summary in summaries if not summary.error]),
    )


def summarize(model_admin: LLMCacheAdmin, alias: str) -> AliasSummary:
    """Read one alias's settings, entries and shared stats; a failure becomes ``error``."""
    summary = AliasSummary(
        alias=alias,
        entries_url=admin_url(model_admin, "entries", alias),
        clear_url=admin_url(model_admin, "clear", alias),
        reset_url=admin_url(model_admin, "reset_stats", alias),
    )
    try:
        cache = llm_caches[alias]
    except Exception as exc:  # a settings mistake in one alias must not hide the others
        summary.error = f"{type(exc).__name__}: {exc}"
        return summary
    _describe(summary, cache)
    try:
        _read_stats(summary, cache)
        tally = _tally(model_admin, summary, cache) if summary.can_list else None
        summary.scopes = scope_rows(model_admin, cache, tally)
        summary.kinds = kind_summaries(cache)
        _link_kinds(model_admin, summary)
    except Exception as exc:  # one unreachable server must not take the whole dashboard down
        summary.error = server_error_text(cache, exc)
        logger.warning("LLM cache admin: cannot read alias %r: %s", alias, summary.error)
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
    # A single server is the store itself: its outage is the alias's error, not a node's.
    many = len(cache.store.nodes(measure=False)) > 1
    summary.down_nodes = cache.store.unreachable_nodes() if many else []
    try:
        summary.nodes = cache.store.nodes()
    except Exception as exc:  # no node answered at all: the stats read below reports it
        logger.warning("LLM cache admin: cannot list the nodes of %r: %s", summary.alias, error_text(exc))


def _read_stats(summary: AliasSummary, cache: LLMCache) -> None:
    summary.stats = cache.shared_stats()
    summary.chart = HitChart(hits=int(summary.stats.get("hits") or 0), misses=int(summary.stats.get("misses") or 0))
    saved = summary.stats.get("seconds_saved") or 0.0
    summary.time_saved = format_seconds(saved) if saved else "—"
    summary.activity = _activity(summary.stats)


def _activity(stats: dict[str, Any]) -> list[str]:
    shown = [*ACTIVITY, COALESCED] if "coalesced" in stats else list(ACTIVITY)
    lines = []
    for name, singular, plural in shown:
        count = int(stats.get(name) or 0)
        if count or name in {"writes", "errors"}:
            lines.append(f"{count} {singular if count == 1 else plural}")
    return lines


def _tally(model_admin: LLMCacheAdmin, summary: AliasSummary, cache: LLMCache) -> ScopeTally:
    models: dict[str, ModelSummary] = {}
    scopes = ScopeTally()
    for info in itertools.islice(cache.entries(), SCAN_LIMIT + 1):
        scopes.add(info)
        model = models.setdefault(info.model, ModelSummary(info.model))
        model.entries += 1
        model.size += info.size
        model.original_size += max(info.original_size, info.size)
    summary.entries = sum(model.entries for model in models.values())
    summary.size = sum(model.size for model in models.values())
    summary.original_size = sum(model.original_size for model in models.values())
    summary.scan_capped = summary.entries > SCAN_LIMIT
    for model in models.values():
        model.entries_url = admin_url(model_admin, "entries", summary.alias, query={"model": model.model})
    summary.models = sorted(models.values(), key=lambda model: (-model.entries, model.model))
    return scopes


def _link_kinds(model_admin: LLMCacheAdmin, summary: AliasSummary) -> None:
    """Link each listed kind, and each LangGraph node, to its entries."""
    for kind in summary.kinds:
        if kind.kind not in LISTED_KINDS:
            continue
        kind.entries_url = admin_url(model_admin, "kind_entries", summary.alias, kind.kind)
        for node in kind.nodes:
            node.url = admin_url(model_admin, "kind_entries", summary.alias, kind.kind, query={"node": node.node})
