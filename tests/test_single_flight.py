"""Single-flight: a burst of identical misses makes one model call (threads and asyncio tasks)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from langchain_core.language_models import FakeListChatModel, FakeListLLM

from llmcache_django.cache import LLMCache
from llmcache_django.stores.base import LEASE_DONE
from tests.conftest import kind_param
from tests.helpers import (
    async_wait_until,
    running,
    tasks_waiting_for_a_leader,
    threads_parked,
    threads_waiting_for_a_leader,
    wait_until,
    waiting_for_a_leader,
)

KINDS = ["redis", "memcached", "alias-pymemcache", "alias-locmem"]


class GatedChat(FakeListChatModel):
    """A chat model whose answers wait for a gate the test opens, and which counts its calls."""

    gate: Any = None
    calls: Any = None
    fail_first: bool = False

    def _call(self, *args: Any, **kwargs: Any) -> str:
        with self.calls["lock"]:
            self.calls["count"] += 1
            first = self.calls["count"] == 1
        self.gate.wait(10)
        if first and self.fail_first:
            raise RuntimeError("the provider failed")
        return "the answer"


def gated_model(cache: LLMCache, **fields: Any) -> GatedChat:
    return GatedChat(
        responses=["unused"],
        cache=cache,
        gate=threading.Event(),
        calls={"count": 0, "lock": threading.Lock()},
        **fields,
    )


def make(kind: str, make_llm_cache: Callable[..., LLMCache], bound: float = 5) -> LLMCache:
    if kind.startswith("alias-"):
        return make_llm_cache(kind, OPTIONS={"SINGLE_FLIGHT": bound})
    return make_llm_cache(kind, single_flight=bound)


def burst_in_threads(model: GatedChat, prompts: list[str]) -> tuple[list[Any], float]:
    results: list[Any] = [None] * len(prompts)

    def ask(index: int) -> None:
        try:
            results[index] = model.invoke(prompts[index]).content
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(len(prompts))]
    for thread in threads:
        thread.start()
    while model.calls["count"] == 0:
        time.sleep(0.005)
    # The others join the flight (or, where nobody waits, call the model) meanwhile.
    wait_until(lambda: threads_parked(threads, waiting_for_a_leader, running(GatedChat._call)), 30, "the burst parked")
    opened = time.monotonic()
    model.gate.set()
    for thread in threads:
        thread.join(30)
    return results, time.monotonic() - opened


@pytest.mark.parametrize("kind", KINDS)
def test_fifty_threads_asking_the_same_prompt_make_one_model_call(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make(kind, make_llm_cache)
    model = gated_model(cache)
    results, seconds = burst_in_threads(model, ["What is the capital of France?"] * 50)
    print(f"{kind}: 50 threads answered {seconds * 1000:.1f} ms after the model returned")
    assert results == ["the answer"] * 50
    assert model.calls["count"] == 1
    assert cache.stats is not None and cache.stats.coalesced == 49


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_the_leader_raising_lets_every_waiter_call_the_model_itself(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make(kind, make_llm_cache, bound=20)
    model = gated_model(cache, fail_first=True)
    results, seconds = burst_in_threads(model, ["a failing prompt"] * 20)
    print(f"{kind}: waiters of a failed leader all answered {seconds * 1000:.1f} ms after it raised")
    assert sum(isinstance(result, RuntimeError) for result in results) == 1
    assert results.count("the answer") == 19
    assert model.calls["count"] == 20


def test_different_prompts_in_parallel_each_call_the_model(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make("redis", make_llm_cache)
    model = gated_model(cache)
    model.gate.set()
    results, _ = burst_in_threads(model, [f"question {index}" for index in range(20)])
    assert results == ["the answer"] * 20
    assert model.calls["count"] == 20


def test_a_batch_with_a_repeated_prompt_does_not_wait_on_itself(make_llm_cache: Callable[..., LLMCache]) -> None:
    from langchain_core.language_models import FakeListLLM

    cache = make("redis", make_llm_cache, bound=20)
    llm = FakeListLLM(responses=["one", "two", "three"], cache=cache)
    started = time.monotonic()
    assert llm.batch(["same", "other", "same"]) == ["one", "two", "three"]
    assert time.monotonic() - started < 10  # completes at all (well before the 20 s bound)


def test_a_dead_server_means_no_waiting(make_llm_cache: Callable[..., LLMCache]) -> None:
    import redis

    from llmcache_django import RedisLLMCache
    from tests.servers import free_port

    cache = RedisLLMCache(redis.Redis(port=free_port()), single_flight=20)
    model = gated_model(cache)
    model.gate.set()
    results, seconds = burst_in_threads(model, ["same"] * 10)
    print(f"dead server: 10 calls done in {seconds * 1000:.1f} ms")
    assert results == ["the answer"] * 10
    assert model.calls["count"] == 10


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_two_hundred_tasks_asking_the_same_prompt_make_one_model_call(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make(kind, make_llm_cache)
    model = gated_model(cache)

    async def burst() -> list[Any]:
        asks = [asyncio.ensure_future(model.ainvoke("the same question")) for _ in range(200)]
        while model.calls["count"] == 0:
            await asyncio.sleep(0.005)
        await async_wait_until(lambda: tasks_waiting_for_a_leader() == 199, 30, "the others joined the flight")
        model.gate.set()
        return [message.content for message in await asyncio.gather(*asks)]

    assert asyncio.run(burst()) == ["the answer"] * 200
    assert model.calls["count"] == 1


@pytest.mark.parametrize("bound", [0, -1, 7200, "yes"])
def test_a_single_flight_bound_that_is_not_a_positive_number_of_seconds_is_error_e011(bound: Any) -> None:
    from tests.test_checks import DATABASE, check_ids

    ids = check_ids(CACHES={"default": DATABASE}, LLM_CACHES={"default": {"OPTIONS": {"SINGLE_FLIGHT": bound}}})
    assert ids == ["llmcache_django.E011"]


def test_single_flight_on_a_file_cache_warns_w011_that_it_coalesces_per_process_only(tmp_path: Any) -> None:
    from tests.test_checks import check_ids

    files = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    ids = check_ids(CACHES={"default": files}, LLM_CACHES={"default": {"OPTIONS": {"SINGLE_FLIGHT": 12.5}}})
    assert ids == ["llmcache_django.W011"]


def test_single_flight_on_the_database_cache_passes_the_checks() -> None:
    from tests.test_checks import DATABASE, check_ids

    assert check_ids(CACHES={"default": DATABASE}, LLM_CACHES={"default": {"OPTIONS": {"SINGLE_FLIGHT": True}}}) == []


def _start_worker(kind: str, port: int, namespace: str, directory: Any, index: int, bound: float = 20) -> Any:
    import subprocess
    import sys

    argv = [
        sys.executable,
        "-m",
        "tests.single_flight_worker",
        kind,
        str(port),
        namespace,
        str(directory),
        str(index),
        str(bound),
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def _wait_for(predicate: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def _calls(directory: Any) -> int:
    path = directory / "calls"
    return len(path.read_bytes()) if path.exists() else 0


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_four_processes_asking_the_same_prompt_make_one_model_call(
    kind: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    import uuid

    port = request.getfixturevalue(f"{kind}_server").port
    namespace = f"sf{uuid.uuid4().hex[:8]}"
    workers = [_start_worker(kind, port, namespace, tmp_path, index) for index in range(4)]
    _wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 4 and _calls(tmp_path) >= 1)
    time.sleep(0.5)  # every process joins the flight
    opened = time.monotonic()
    (tmp_path / "gate").touch()
    answers = [worker.communicate(timeout=60)[0].strip() for worker in workers]
    print(f"{kind}: 4 processes answered within {(time.monotonic() - opened) * 1000:.0f} ms of the gate")
    assert answers == ["the answer"] * 4
    assert _calls(tmp_path) == 1


def test_a_killed_leader_process_holds_other_processes_only_until_its_lease_expires(
    tmp_path: Any, redis_server: Any
) -> None:
    import uuid

    namespace = f"sf{uuid.uuid4().hex[:8]}"
    leader = _start_worker("redis", redis_server.port, namespace, tmp_path, 0, bound=8)
    _wait_for(lambda: _calls(tmp_path) >= 1)
    waiters = [_start_worker("redis", redis_server.port, namespace, tmp_path, index, bound=8) for index in (1, 2)]
    _wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 3)
    time.sleep(0.3)
    leader.kill()
    killed = time.monotonic()
    (tmp_path / "gate").touch()
    answers = [waiter.communicate(timeout=60)[0].strip() for waiter in waiters]
    print(
        f"killed leader: its waiters answered {time.monotonic() - killed:.2f} s later (lease of 8 s from the leader's start)"
    )
    leader.wait()
    assert answers == ["the answer"] * 2
    # The killed leader's call, then one or two more: after the lease expired, one waiter may lead the other.
    assert _calls(tmp_path) in (2, 3)


class CountingConnection(redis.Connection):
    """A redis-py connection that counts what it sends: one send is one round trip (a pipeline too)."""

    sends = 0

    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        type(self).sends += 1
        super().send_packed_command(*args, **kwargs)


def _round_trips_of_a_miss(port: int, single_flight: bool) -> int:
    from langchain_core.language_models import FakeListLLM

    from llmcache_django import RedisLLMCache

    pool = redis.ConnectionPool(
        port=port, socket_timeout=2, socket_connect_timeout=2, connection_class=CountingConnection
    )
    client = redis.Redis(connection_pool=pool)
    namespace = f"r{uuid.uuid4().hex[:8]}"
    cache = RedisLLMCache(
        client, async_client=redis.asyncio.Redis(port=port), namespace=namespace, single_flight=single_flight
    )
    llm = FakeListLLM(responses=["the answer"], cache=cache)
    llm.invoke("a warm-up prompt")  # the connection, and the LLM record written on first use
    before = CountingConnection.sends
    assert llm.invoke("a prompt nobody asked before") == "the answer"
    return CountingConnection.sends - before


def test_a_miss_with_single_flight_pays_one_extra_round_trip_on_redis(redis_server: Any) -> None:
    plain, flighted = (_round_trips_of_a_miss(redis_server.port, flag) for flag in (False, True))
    print(f"round trips of a miss and its update: {plain} plain, {flighted} with single-flight")
    assert plain == 3  # GETRANGE (bounded), EXISTS (GETRANGE reads a missing key as empty), SET
    assert flighted == plain + 1  # SET NX for the lease; its end rides in the entry's pipeline


LEASE_KINDS = ("redis", "memcached", "alias-pymemcache", "alias-locmem", "alias-database", "redis-cluster")


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("kind", [kind_param(kind) for kind in LEASE_KINDS])
def test_after_the_leaders_write_its_lease_reads_done(
    kind: str, asynchronous: bool, make_llm_cache: Callable[..., LLMCache]
) -> None:
    from langchain_core.outputs import Generation

    from llmcache_django.keys import entry_digest
    from llmcache_django.single_flight import lease_name

    cache = make(kind, make_llm_cache)
    answer = [Generation(text="the answer")]

    async def miss_then_update() -> None:
        assert await cache.alookup("a lease question", "llm") is None  # the miss leads: it takes the lease
        await cache.aupdate("a lease question", "llm", answer)

    if asynchronous:
        asyncio.run(miss_then_update())
    else:
        assert cache.lookup("a lease question", "llm") is None
        cache.update("a lease question", "llm", answer)
    lease = lease_name(entry_digest("a lease question", "llm"))
    deadline = time.monotonic() + 2  # memcached's lease end is sent without a reply
    while cache.store.read_lease(lease) != LEASE_DONE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.store.read_lease(lease) == LEASE_DONE
    assert cache.lookup("a lease question", "llm") == answer


@pytest.fixture
def global_single_flight_cache(make_llm_cache: Callable[..., LLMCache]) -> Iterator[LLMCache]:
    """An ``LLM_CACHES`` alias with single-flight, reached as LangChain's global cache (the
    stand-in ``AppConfig.ready()`` installed forwards to it)."""
    from langchain_core.globals import get_llm_cache

    from llmcache_django.handler import default_llm_cache

    assert get_llm_cache() is default_llm_cache
    yield make("alias-django-redis", make_llm_cache, bound=20)


def test_threads_on_the_global_cache_make_one_model_call(global_single_flight_cache: LLMCache) -> None:
    model = gated_model(None)  # type: ignore[arg-type]  # no cache=: LangChain's global one
    results, _ = burst_in_threads(model, ["a question for the global cache"] * 20)
    assert results == ["the answer"] * 20
    assert model.calls["count"] == 1
    assert global_single_flight_cache.stats is not None and global_single_flight_cache.stats.coalesced == 19


class GatedLLM(FakeListLLM):
    """A text model whose calls wait for a gate and count the prompts they answer."""

    gate: Any = None
    prompts: Any = None

    def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        self.prompts.append(prompt)
        self.gate.wait(10)
        return f"answer to {prompt}"


def test_two_batches_of_the_same_prompts_make_one_model_call_per_prompt(
    global_single_flight_cache: LLMCache,
) -> None:
    llm = GatedLLM(responses=["unused"], gate=threading.Event(), prompts=[])
    prompts = ["first", "second", "third"]
    results: list[Any] = [None, None]

    def ask(index: int) -> None:
        results[index] = llm.batch(prompts)

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    while not llm.prompts:
        time.sleep(0.005)
    wait_until(lambda: threads_waiting_for_a_leader() >= 1, 30, "the second batch waiting for the first")
    llm.gate.set()
    for thread in threads:
        thread.join(30)
    assert results == [[f"answer to {prompt}" for prompt in prompts]] * 2
    assert sorted(llm.prompts) == sorted(prompts)  # each prompt answered by the model once
