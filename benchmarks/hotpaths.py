"""`python -m benchmarks.hotpaths`: cProfile our lookup hit and update on the chat payload.

Starts its own servers like `benchmarks.run`; prints the functions with the most own time,
so a missed target can be traced to a line of llmcache_django.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from collections.abc import Callable

import redis
from pymemcache.client.base import Client as MemcachedClient

from benchmarks import servers
from benchmarks.fixtures import LLM_STRING, Payload, payloads
from llmcache_django.compat import MemcachedCache, RedisCache

CALLS = 20_000


def profiled(label: str, call: Callable[[], object], top: int) -> None:
    """Run `call` CALLS times under cProfile and print the top entries by own time."""
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(CALLS):
        call()
    profile.disable()
    print(f"\n=== {label} ({CALLS:,} calls) ===")
    pstats.Stats(profile).sort_stats("tottime").print_stats(top)


def profile_cache(name: str, cache: RedisCache | MemcachedCache, chat: Payload, top: int) -> None:
    """Profile one cache's hit and update."""
    cache.update(chat.prompt, LLM_STRING, chat.generations)
    profiled(f"{name} lookup hit", lambda: cache.lookup(chat.prompt, LLM_STRING), top)
    profiled(f"{name} update", lambda: cache.update(chat.prompt, LLM_STRING, chat.generations), top)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpaths", description=__doc__)
    parser.add_argument("--top", type=int, default=20, help="functions to show per profile")
    top = parser.parse_args().top
    chat = next(p for p in payloads() if p.name == "chat")
    with servers.redis_server() as redis_server, servers.memcached() as memcached_server:
        profile_cache("Redis", RedisCache(redis.Redis(port=redis_server.port)), chat, top)
        memcached = MemcachedCache(MemcachedClient((servers.HOST, memcached_server.port)))
        profile_cache("Memcached", memcached, chat, top)


if __name__ == "__main__":
    main()
