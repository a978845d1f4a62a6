"""Per-loop Redis clients are released with their loop; a stalled server delays no call for ever."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from langchain_core.language_models import FakeListChatModel

from llmcache_django import RedisLLMCache
from llmcache_django.compat import AsyncRedisCache, RedisCache
from llmcache_django.core.cache import LLMCache
from tests import servers
from tests.helpers import wait_until

LOOPS = 1000
SYNC_WORKERS = 8
ASYNC_WORKERS = 100
#: Seconds each worker waits between model calls, as real traffic does (spinning workers would
#: starve the event loop's thread of the GIL and time that instead of the cache).
THINK_TIME = 0.002


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def named_connections(server: servers.Server, name: str) -> int:
    return sum(client["name"] == name for client in redis.Redis(port=server.port).client_list())


@pytest.mark.parametrize("given", ["sync", "async"])
def test_a_thousand_event_loops_leave_a_bounded_number_of_connections_and_files(
    given: str, redis_server: servers.Server
) -> None:
    name = f"leak-{uuid.uuid4().hex[:8]}"
    cache: LLMCache = (
        RedisCache(redis.Redis(port=redis_server.port, client_name=name))
        if given == "sync"
        else AsyncRedisCache(redis.asyncio.Redis(port=redis_server.port, client_name=name))
    )
    model = FakeListChatModel(responses=["an answer"], cache=cache)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def ask(question: str) -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await model.ainvoke(question)

    asyncio.run(ask("warm-up"))
    files_before = open_files()
    for index in range(LOOPS):
        asyncio.run(ask(f"question {index % 10}"))
    files_after, connections = open_files(), named_connections(redis_server, name)
    gc.collect()  # what is still alive now is held, not merely awaiting collection
    live_loops = sum(loop() is not None for loop in loops)
    print(
        f"\n{given}: {LOOPS} asyncio.run -> {connections} connections, {files_after - files_before:+d} files, {live_loops} live loops"
    )
    assert connections <= 1  # at most the sync client's one pooled connection
    assert files_after - files_before <= 5
    assert live_loops <= 1  # asgiref's sync_to_async remembers the last loop (Django's asend_robust uses it)
    assert cache.stats.errors == 0  # type: ignore[union-attr]


@pytest.fixture
def pausable_server() -> Iterator[servers.Server]:
    server = servers.start_redis()
    yield server
    assert server.process is not None
    server.process.send_signal(signal.SIGCONT)
    server.stop()


def test_a_paused_server_delays_calls_only_until_the_server_timeout(pausable_server: servers.Server) -> None:
    cache = RedisLLMCache(redis.Redis.from_url(pausable_server.url), namespace="paused", server_timeout=0.5)
    model = FakeListChatModel(responses=["an answer"], cache=cache)
    load = Load(model)
    workers = [threading.Thread(target=load.sync_worker, args=(index,)) for index in range(SYNC_WORKERS)]
    workers.append(threading.Thread(target=lambda: asyncio.run(load.async_workers())))
    for worker in workers:
        worker.start()
    assert pausable_server.process is not None
    wait_until(lambda: min(map(len, load.durations.values())) >= 10, 60, "calls before the pause")
    pausable_server.process.send_signal(signal.SIGSTOP)
    before = {kind: len(durations) for kind, durations in load.durations.items()}
    # Paused until the cache met the pause and both kinds of callers made calls past it.
    wait_until(
        lambda: (
            cache.stats.errors > 0  # type: ignore[union-attr]
            and all(len(load.durations[kind]) >= before[kind] + 3 for kind in before)
        ),
        60,
        "calls during the pause",
    )
    load.stop.set()
    for worker in workers:
        worker.join(timeout=30)  # the server stays paused: only a bounded call can return now
    assert not any(worker.is_alive() for worker in workers)
    for kind, durations in load.durations.items():
        print(f"\n{kind}: {len(durations)} model calls, longest {max(durations):.3f}s", end="")
    assert load.failures == []
    assert cache.stats.errors > 0  # type: ignore[union-attr]  # the pause was met, and survived


class Load:
    """Model calls from threads and asyncio tasks until :attr:`stop` is set, timed."""

    def __init__(self, model: FakeListChatModel) -> None:
        self.model = model
        self.stop = threading.Event()
        self.durations: dict[str, list[float]] = {"sync": [], "async": []}
        self.failures: list[BaseException] = []

    def sync_worker(self, worker: int) -> None:
        for call in range(1_000_000):  # bounded: stop ends it long before
            if self.stop.is_set():
                return
            started = time.monotonic()
            try:
                self.model.invoke(f"sync {worker} {call % 50}")
            except Exception as exc:
                self.failures.append(exc)
            self.durations["sync"].append(time.monotonic() - started)
            time.sleep(THINK_TIME)

    async def async_workers(self) -> None:
        await asyncio.gather(*(self.async_worker(worker) for worker in range(ASYNC_WORKERS)))

    async def async_worker(self, worker: int) -> None:
        for call in range(1_000_000):
            if self.stop.is_set():
                return
            started = time.monotonic()
            try:
                await self.model.ainvoke(f"async {worker} {call % 50}")
            except Exception as exc:
                self.failures.append(exc)
            self.durations["async"].append(time.monotonic() - started)
            await asyncio.sleep(THINK_TIME)
