"""The longest model call on each Redis path while the server is stalled (SIGSTOP) or killed.

``python -m benchmarks.redis_faults`` starts a throw-away redis-server, builds every way of
putting the cache on it (a django-redis alias, a client you give, the compat classes on
redis-py's default clients), warms each with an entry, then stops the server and times one
``FakeListLLM.invoke`` / ``ainvoke`` per path (all paths at once, each in its own thread),
then the same with the server killed; then the same on a Redis Cluster (3 primaries with a
replica each) with the primary holding the entry stalled or killed. Figures for README
"Time bound".
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

PROMPT = "what is cached?"


@dataclass
class Path:
    """One way of building the cache, and whether the model call is sync or async."""

    name: str
    build: Callable[[int], Any]
    asynchronous: bool


def _alias_cache(port: int) -> Any:
    from django.test import override_settings

    from llmcache_django import llm_caches

    override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "llm": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"},
        },
        LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": "faults"}},
    ).enable()
    return llm_caches["default"]


def _paths() -> list[Path]:
    import redis
    import redis.asyncio

    from llmcache_django import RedisLLMCache
    from llmcache_django.compat import AsyncRedisCache, RedisCache

    return [
        Path("alias (django-redis), sync", _alias_cache, False),
        Path("alias (django-redis), async", _alias_cache, True),
        Path("RedisLLMCache(redis.Redis()), sync", lambda port: RedisLLMCache(redis.Redis(port=port)), False),
        Path("RedisLLMCache(redis.Redis()), async", lambda port: RedisLLMCache(redis.Redis(port=port)), True),
        Path("compat RedisCache(redis.Redis()), sync", lambda port: RedisCache(redis.Redis(port=port)), False),
        Path(
            "compat AsyncRedisCache(redis.asyncio.Redis()), sync",
            lambda port: AsyncRedisCache(redis.asyncio.Redis(port=port)),
            False,
        ),
        Path(
            "compat AsyncRedisCache(redis.asyncio.Redis()), async",
            lambda port: AsyncRedisCache(redis.asyncio.Redis(port=port)),
            True,
        ),
    ]


def _model(cache: Any) -> Any:
    from langchain_core.language_models import FakeListLLM

    return FakeListLLM(responses=["live"] * 10, cache=cache)


def _timed_call(model: Any, asynchronous: bool) -> float:
    started = time.monotonic()
    if asynchronous:
        asyncio.run(model.ainvoke(PROMPT))
    else:
        model.invoke(PROMPT)
    return time.monotonic() - started


def measure(fault: str) -> dict[str, float]:
    """Seconds of the first model call on each path after ``fault`` ("stalled" or "killed")."""
    from tests import servers

    server = servers.start_redis()
    try:
        paths = {path.name: path for path in _paths()}
        caches = {name: path.build(server.port) for name, path in paths.items()}
        assert server.process is not None
        return _after_fault(caches, paths, server.process, fault)
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
        server.kill()
        server.stop()


def measure_cluster(fault: str) -> dict[str, float]:
    """:func:`measure` on a Redis Cluster, the primary holding the entry stalled or killed."""
    import redis.asyncio.cluster
    import redis.cluster

    from llmcache_django import RedisLLMCache
    from tests.cluster_servers import start_cluster

    cluster = start_cluster()
    try:
        url = cluster.urls[0]
        given = {
            "sync": lambda: RedisLLMCache(redis.cluster.RedisCluster.from_url(url), namespace="faults"),
            "async": lambda: RedisLLMCache(
                async_client=redis.asyncio.cluster.RedisCluster.from_url(url), namespace="faults"
            ),
        }
        paths = {
            f"cluster, {client} client, {mode}": Path(client, lambda port: None, mode == "async")
            for client in given
            for mode in ("sync", "async")
        }
        caches = {name: given[path.name]() for name, path in paths.items()}
        first = next(iter(caches.values()))
        _timed_call(_model(first), False)  # stored: every cache reads the same entry
        port = _entry_node_port(first)
        process = next(server.process for server in cluster.servers if server.port == port)
        assert process is not None
        return _after_fault(caches, paths, process, fault)
    finally:
        for server in cluster.servers:
            if server.process is not None and server.process.poll() is None:
                server.process.send_signal(signal.SIGCONT)
        cluster.stop()


def _entry_node_port(cache: Any) -> int:
    from llmcache_django.core.listing import is_entry_name

    store = cache.store
    keys = [key.decode() for key in store.client.scan_iter(match=store.pattern)]
    (key,) = [key for key in keys if is_entry_name(key[len(store.prefix) :])]
    return int(store.client.get_node_from_key(key).port)


def _after_fault(caches: dict[str, Any], paths: dict[str, Path], process: Any, fault: str) -> dict[str, float]:
    models = {name: _model(cache) for name, cache in caches.items()}
    for name, model in models.items():
        _timed_call(model, paths[name].asynchronous)  # stored (or a hit); a connection is pooled
        _timed_call(model, paths[name].asynchronous)  # a hit
    if fault == "stalled":
        process.send_signal(signal.SIGSTOP)
    else:
        process.kill()
        process.wait()
    with ThreadPoolExecutor(len(models)) as pool:
        futures = {name: pool.submit(_timed_call, model, paths[name].asynchronous) for name, model in models.items()}
        return {name: future.result() for name, future in futures.items()}


def main() -> None:
    import django
    from django.conf import settings

    settings.configure(INSTALLED_APPS=["llmcache_django"], LLM_CACHE_SET_GLOBAL=False)
    django.setup()
    import logging

    logging.getLogger("llmcache_django").setLevel(logging.ERROR)
    results = {fault: {**measure(fault), **measure_cluster(fault)} for fault in ("stalled", "killed")}
    width = max(len(name) for name in results["stalled"])
    print(f"{'path':<{width}}  stalled (SIGSTOP)  killed (SIGKILL)")
    for name in results["stalled"]:
        print(f"{name:<{width}}  {results['stalled'][name]:>15.2f} s  {results['killed'][name]:>14.2f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
