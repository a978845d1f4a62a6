"""What the per-call directive check (``llm_cache_control``'s gate) costs on a Redis lookup hit.

Times, interleaved: a hit, the gate alone (``control.current_for``, what every lookup and
update asks), and a hit inside an ``llm_cache_control(scope=...)`` block (the scoped name and
the per-alias resolution). ``python -m benchmarks.directives`` prints the figures.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import redis

from benchmarks.fixtures import LLM_STRING, Payload
from benchmarks.servers import HOST
from benchmarks.timing import Plan, Summary, interleaved
from llmcache_django import RedisLLMCache, llm_cache_control
from llmcache_django.core import control


@dataclass(frozen=True)
class DirectiveOverhead:
    """Median latencies of a hit, of the directive check alone, and of a scoped hit."""

    hit: Summary
    check: Summary
    scoped_hit: Summary

    @property
    def check_share(self) -> float:
        """The directive check's share of a hit (the issue's target: at most 2 %)."""
        return self.check.median_us / self.hit.median_us


def measure(port: int, db: int, payload: Payload, plan: Plan) -> DirectiveOverhead:
    """One RedisLLMCache and one entry stored unscoped and in a scope."""
    cache = RedisLLMCache(redis.Redis(host=HOST, port=port, db=db), stats=False)
    cache.update(payload.prompt, LLM_STRING, payload.generations)
    scope = llm_cache_control(scope="tenant:acme")
    with scope:
        cache.update(payload.prompt, LLM_STRING, payload.generations)

    def scoped_hit() -> object:
        with scope:
            return cache.lookup(payload.prompt, LLM_STRING)

    calls: dict[str, Callable[[], object]] = {
        "hit": functools.partial(cache.lookup, payload.prompt, LLM_STRING),
        "check": functools.partial(control.current_for, cache.alias),
        "scoped hit": scoped_hit,
    }
    found = interleaved(calls, plan)
    return DirectiveOverhead(found["hit"], found["check"], found["scoped hit"])


def main() -> None:
    from benchmarks.fixtures import payloads
    from benchmarks.servers import redis_server

    chat = next(payload for payload in payloads() if payload.name == "chat")
    with redis_server() as server:
        result = measure(server.port, 0, chat, Plan(rounds=20, batch=500, warmup=500))
    print(
        f"hit {result.hit.median_us:.2f} µs; directive check {result.check.median_us:.3f} µs "
        f"({result.check_share:.2%} of a hit); scoped hit {result.scoped_hit.median_us:.2f} µs"
    )


if __name__ == "__main__":
    main()
