"""``manage.py llm_cache_stats``: hits, misses and what the cache saved, across processes."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from llmcache_django.management.commands._common import add_alias_arguments, selected_caches, server_errors


class Command(BaseCommand):
    help = "Show each LLM cache's shared counters: hits, misses, writes, errors, hit ratio, tokens and time saved."

    def add_arguments(self, parser: CommandParser) -> None:
        add_alias_arguments(parser)
        parser.add_argument("--reset", action="store_true", help="Set the counters back to zero after showing them.")

    def handle(self, *args: str, **options: Any) -> None:
        report = {}
        for cache in selected_caches(options["aliases"], options["all"]):
            with server_errors(cache, "reading stats"):
                report[cache.alias] = cache.shared_stats()
                if options["reset"]:
                    cache.reset_stats()
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        for alias, stats in report.items():
            self.stdout.write(_line(alias, stats))


def _line(alias: str, stats: dict[str, Any]) -> str:
    ratio = "n/a" if stats["hit_ratio"] is None else f"{stats['hit_ratio']:.1%}"
    return (
        f"{alias}: {stats['hits']} hits, {stats['misses']} misses ({ratio} hit ratio), {stats['writes']} writes, "
        f"{stats['errors']} errors; saved {stats['tokens_saved']} tokens and {stats['seconds_saved']:.1f}s of model time"
    )
