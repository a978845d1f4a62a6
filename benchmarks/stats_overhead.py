"""What the per-process stats counters cost on a Redis lookup hit."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import redis

from benchmarks.fixtures import LLM_STRING, Payload
from benchmarks.servers import HOST
from benchmarks.timing import Plan, Summary, interleaved
from llmcache_django import RedisLLMCache


@dataclass(frozen=True)
class StatsOverhead:
    """Median hit latency with and without stats, and the relative overhead."""

    with_stats: Summary
    without_stats: Summary

    @property
    def overhead(self) -> float:
        """Fraction of a hit the stats add (negative means lost in the noise)."""
        return self.with_stats.median_us / self.without_stats.median_us - 1


def measure(port: int, db: int, payload: Payload, plan: Plan) -> StatsOverhead:
    """Two RedisLLMCache instances on one DB and one stored entry, stats on vs off."""
    caches = {
        "with stats": RedisLLMCache(redis.Redis(host=HOST, port=port, db=db), stats=True),
        "without stats": RedisLLMCache(redis.Redis(host=HOST, port=port, db=db), stats=False),
    }
    caches["with stats"].update(payload.prompt, LLM_STRING, payload.generations)
    calls = {name: functools.partial(cache.lookup, payload.prompt, LLM_STRING) for name, cache in caches.items()}
    found = interleaved(calls, plan)
    return StatsOverhead(found["with stats"], found["without stats"])
