"""Every Redis path makes one bounded try per cache call, whatever the client's own retries say.

redis-py's default ``Redis()`` retries 10 times with backoff: a stalled server held a model
call ~59 s on the paths where the user gives such a client, a killed one ~4 s.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import valkey
from langchain_core.language_models import FakeListLLM
from valkey.backoff import ExponentialBackoff
from valkey.retry import Retry as ValkeyRetry

from llmcache_django import RedisLLMCache, llm_caches
from llmcache_django.compat import AsyncRedisCache, RedisCache
from llmcache_django.core.cache import LLMCache
from llmcache_django.stores.base import is_entry_name
from tests import servers
from tests.cluster_servers import Cluster, start_cluster
from tests.helpers import run_bounded

TIMEOUT = 0.5
#: valkey-py retries a command only on the errors listed here (redis-py 8 on every connection error).
VALKEY_ERRORS = [valkey.exceptions.TimeoutError]
#: Far above one bounded try (connect, then answer: 2 x the timeout), far below 10 retries.
LIMIT = 20.0


def _alias(port: int) -> LLMCache:
    from django.test import override_settings

    override = override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "llm": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}"},
        },
        LLM_CACHES={"default": {"CACHE": "llm", "NAMESPACE": "bounds", "OPTIONS": {"SERVER_TIMEOUT": TIMEOUT}}},
    )
    override.enable()
    _overrides.append(override)
    return llm_caches["default"]


_overrides: list[Any] = []

#: Each way a user puts the cache on one Redis: redis-py's default clients retry 10 times.
PATHS: dict[str, Callable[[int], LLMCache]] = {
    "given-sync-client": lambda port: RedisLLMCache(redis.Redis(port=port), server_timeout=TIMEOUT),
    "given-async-client": lambda port: RedisLLMCache(
        async_client=redis.asyncio.Redis(port=port), server_timeout=TIMEOUT
    ),
    "compat-redis": lambda port: RedisCache(redis.Redis(port=port)),
    "compat-async-redis": lambda port: AsyncRedisCache(redis.asyncio.Redis(port=port)),
    "given-valkey-client-retrying": lambda port: RedisLLMCache(
        valkey.Valkey(
            port=port, socket_timeout=3, retry=ValkeyRetry(ExponentialBackoff(), 10), retry_on_error=VALKEY_ERRORS
        ),
        server_timeout=TIMEOUT,
    ),
    "alias": _alias,
}


@pytest.fixture(autouse=True)
def _settings_restored() -> Iterator[None]:
    yield
    while _overrides:
        _overrides.pop().disable()


def invoke(model: FakeListLLM, mode: str) -> str:
    """One model call, sync or from a new event loop."""
    if mode == "async":
        return asyncio.run(model.ainvoke("question"))
    return model.invoke("question")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("path", list(PATHS))
def test_a_stalled_redis_holds_the_model_call_for_one_bounded_try(path: str, mode: str) -> None:
    server = servers.start_redis()
    try:
        cache = PATHS[path](server.port)
        model = FakeListLLM(responses=["live"] * 3, cache=cache)
        invoke(model, mode)  # stored, and a connection is pooled
        cache.flush_stats()  # nothing left for the background flusher to send to the stalled server
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        answers: list[str] = []
        took = run_bounded(lambda: answers.append(invoke(model, mode)), limit=LIMIT)
    finally:
        if server.process is not None:
            server.process.send_signal(signal.SIGCONT)
        server.kill()
        server.stop()
    print(f"{path} {mode}: {took:.2f} s on a stalled server")  # reported, not asserted
    assert answers == ["live"]
    assert cache.stats.errors == 1  # type: ignore[union-attr]


@pytest.fixture
def dropping_server() -> Iterator[tuple[int, list[int]]]:
    """A port that accepts each connection and closes it at once, counting them: every try a
    client makes shows, as none does against a refused port."""
    accepted: list[int] = []
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.05)

        def serve() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                accepted.append(1)
                connection.close()

        worker = threading.Thread(target=serve, daemon=True)
        worker.start()
        yield listener.getsockname()[1], accepted
        stop.set()
        worker.join(5)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    "path", [path for path in PATHS if path.startswith(("given-", "compat-")) and "valkey" not in path]
)
def test_a_server_that_drops_every_connection_gets_one_try_not_ten_retries(
    path: str, mode: str, dropping_server: tuple[int, list[int]]
) -> None:
    port, accepted = dropping_server
    cache = PATHS[path](port)
    model = FakeListLLM(responses=["live"], cache=cache)
    answers: list[str] = []
    run_bounded(lambda: answers.append(invoke(model, mode)), limit=LIMIT)
    assert answers == ["live"]
    assert cache.stats.errors == 1  # type: ignore[union-attr]
    # The lookup: one connection, and the cache's own retry on a fresh one (a dropped pooled
    # connection looks the same). The update is skipped: the server is left alone for a while.
    assert len(accepted) <= 2, f"{len(accepted)} connections for one model call"


@pytest.fixture
def cluster_without_replicas() -> Iterator[Cluster]:
    """Three primaries and no replica: a stalled one stays stalled (no failover to ride)."""
    cluster = start_cluster(primaries=3, replicas=0)
    yield cluster
    for server in cluster.servers:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
    cluster.stop()


def test_a_stalled_cluster_primary_holds_each_model_call_for_one_bounded_try(
    cluster_without_replicas: Cluster,
) -> None:
    url = cluster_without_replicas.urls[0]
    options: dict[str, Any] = {"namespace": "stalled", "server_timeout": TIMEOUT}
    given = {
        "sync-client": lambda: RedisLLMCache(redis.cluster.RedisCluster.from_url(url), **options),
        "async-client": lambda: RedisLLMCache(async_client=redis.asyncio.cluster.RedisCluster.from_url(url), **options),
    }
    caches = {(client, mode): given[client]() for client in given for mode in ("sync", "async")}
    models = {key: FakeListLLM(responses=["live"] * 2, cache=cache) for key, cache in caches.items()}
    invoke(models["sync-client", "sync"], "sync")  # stored: every cache reads the same entry
    _owner_of_the_entry(caches["sync-client", "sync"], cluster_without_replicas).send_signal(signal.SIGSTOP)
    answers: dict[tuple[str, str], str] = {}

    def every_path_at_once() -> None:
        workers = [
            threading.Thread(target=lambda key=key: answers.update({key: invoke(models[key], key[1])}))
            for key in models
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    took = run_bounded(every_path_at_once, limit=LIMIT)
    print(f"cluster: {took:.2f} s for the slowest path on a stalled primary")  # reported, not asserted
    assert answers == dict.fromkeys(models, "live")
    assert all(cache.stats.errors == 1 for cache in caches.values())  # type: ignore[union-attr]


def _owner_of_the_entry(cache: LLMCache, cluster: Cluster) -> Any:
    """The process of the primary holding the cache's one entry."""
    store: Any = cache.store
    keys = [key.decode() for key in store.client.scan_iter(match=store.pattern)]
    (key,) = [key for key in keys if is_entry_name(key[len(store.prefix) :])]
    port = store.client.get_node_from_key(key).port
    return next(server.process for server in cluster.servers if server.port == port)
