"""``manage.py llm_cache_stats``: hits, misses and what the cache saved, across processes."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from llmcache_django.management.commands._common import add_alias_arguments, selected_caches, server_errors
from llmcache_django.management.commands._kinds import kind_stats
from llmcache_django.ops.savings import SavingsPoint, savings_of


class Command(BaseCommand):
    help = (
        "Show each LLM cache's shared counters: hits, misses, writes, errors, hit ratio, tokens and time saved; "
        "with LLM_CACHE_PRICES (or -v 2), the last 24 hours and 30 days, money saved included; "
        "the scopes with the most hits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_alias_arguments(parser)
        parser.add_argument("--reset", action="store_true", help="Set the counters back to zero after showing them.")

    def handle(self, *args: str, **options: Any) -> None:
        report, history, scopes = {}, {}, {}
        for cache in selected_caches(options["aliases"], options["all"]):
            with server_errors(cache, "reading stats"):
                report[cache.alias] = cache.shared_stats()
                history[cache.alias] = savings_of(cache)
                scopes[cache.alias] = cache.top_scopes(TOP_SCOPES)
                if options["reset"]:
                    cache.reset_stats()
                report.update(kind_stats(cache, reset=options["reset"]))
        if options["json"]:
            for alias, savings in history.items():
                report[alias]["savings"] = None if savings is None else savings.as_json()
                report[alias]["top_scopes"] = [{"scope": scope, "hits": hits} for scope, hits in scopes[alias]]
            self.stdout.write(json.dumps(report, indent=2))
            return
        for alias, stats in report.items():
            self.stdout.write(_line(alias, stats))
            savings = history.get(alias)  # none for the other kinds of entry ("<alias> (<kind>)")
            if savings is not None and (savings.has_money or options["verbosity"] >= 2):
                self.stdout.write(_window_line("last 24 h", savings.total("hourly")))
                self.stdout.write(_window_line("last 30 days", savings.total("daily")))
            if scopes.get(alias):
                self.stdout.write(_scopes_line(scopes[alias]))


def _line(alias: str, stats: dict[str, Any]) -> str:
    ratio = "n/a" if stats["hit_ratio"] is None else f"{stats['hit_ratio']:.1%}"
    counts = ", ".join(
        _counted(stats[name], *forms)
        for name, forms in COUNTED.items()
        if name in stats and (stats[name] or name in SHOWN)
    )
    return f"{alias}: {counts} ({ratio} hit ratio); saved {stats['tokens_saved']} tokens and {stats['seconds_saved']:.1f}s of model time"


def _window_line(window: str, total: SavingsPoint) -> str:
    counts = f"{_counted(total.hits, 'hit', 'hits')}, {_counted(total.misses, 'miss', 'misses')}"
    saved = f"{total.tokens_saved} tokens and {total.seconds_saved:.1f}s of model time"
    money = "" if total.cost_saved is None else f", cost saved {total.cost_saved:.4f} at LLM_CACHE_PRICES"
    return f"  {window}: {counts}; saved {saved}{money}"


def _scopes_line(scopes: list[tuple[str, int]]) -> str:
    return "  top scopes by hits: " + ", ".join(f"{scope} ({hits})" for scope, hits in scopes)


#: The scopes with the most hits printed per alias.
TOP_SCOPES = 5
#: counter -> (singular, plural), in the order printed; those in SHOWN are printed even at 0.
COUNTED = {
    "hits": ("hit", "hits"),
    "misses": ("miss", "misses"),
    "coalesced": ("coalesced call", "coalesced calls"),
    "writes": ("write", "writes"),
    "errors": ("error", "errors"),
    "skipped": ("skipped call", "skipped calls"),
    "refreshed": ("refreshed call", "refreshed calls"),
    "bypassed": ("bypassed call", "bypassed calls"),
}
SHOWN = frozenset({"hits", "misses", "writes", "errors"})


def _counted(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"
