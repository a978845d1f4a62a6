"""Directives: bad values, nesting, the decorator, no leaks between tasks and threads, single-flight."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from langchain_core.language_models import FakeListLLM

from llmcache_django import llm_cache_control
from llmcache_django.core import control
from llmcache_django.core.cache import LLMCache
from tests.helpers import run_bounded, text_generations, wait_until

LLM = "model=test temperature=0"
PROMPT = "the same prompt for everyone"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ((("sometimes",), {}), "'refresh', 'no-store', 'off'"),
        (((), {"max_age": -1}), "seconds >= 0"),
        (((), {"max_age": "600"}), "seconds >= 0"),
        (((), {"ttl": "x"}), "seconds from 0"),
        (((), {"scope": ""}), "printable string of 1 to 200"),
        (((), {"scope": "user\n42"}), "printable string of 1 to 200"),
        (((), {"scope": "x" * 201}), "printable string of 1 to 200"),
        (((), {"scope": 42}), "printable string of 1 to 200"),
    ],
)
def test_a_bad_value_raises_at_once_naming_the_allowed_values(arguments: Any, named: str) -> None:
    args, kwargs = arguments
    with pytest.raises(ValueError, match="llm_cache_control") as raised:
        llm_cache_control(*args, **kwargs)
    assert named in str(raised.value)


def test_bad_config_metadata_raises_at_the_call_before_the_model(make_llm_cache: Callable[..., LLMCache]) -> None:
    from langchain_core.language_models import FakeListChatModel

    from llmcache_django import cached

    model = cached(FakeListChatModel(responses=["never"]), cache=make_llm_cache("alias-locmem"))
    with pytest.raises(ValueError, match="'refresh', 'no-store', 'off'"):
        model.invoke("q", config={"metadata": {"llm_cache": "sometimes"}})
    with pytest.raises(ValueError, match="keys among mode, max_age, ttl, scope"):
        model.stream("q", config={"metadata": {"llm_cache": {"maxage": 5}}})


def test_the_inner_block_wins_for_what_it_sets() -> None:
    with llm_cache_control("no-store", scope="tenant:a", ttl=60):
        with llm_cache_control("refresh", max_age=5):
            inner = control.current()
            assert inner is not None
            assert (inner.mode, inner.scope, inner.ttl, inner.max_age) == ("refresh", "tenant:a", 60, 5)
        outer = control.current()
        assert outer is not None and (outer.mode, outer.max_age) == ("no-store", None)
    assert control.current() is None


def test_the_decorator_directs_sync_and_async_views(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("alias-locmem")
    model = FakeListLLM(responses=["first", "second", "third"], cache=cache)

    @llm_cache_control("refresh")
    def regenerate(request: HttpRequest) -> HttpResponse:
        return HttpResponse(model.invoke(PROMPT))

    @llm_cache_control("refresh")
    async def aregenerate(request: HttpRequest) -> HttpResponse:
        return HttpResponse(await model.ainvoke(PROMPT))

    request = RequestFactory().get("/")
    assert model.invoke(PROMPT) == "first"
    assert regenerate(request).content == b"second"
    assert async_to_sync(aregenerate)(request).content == b"third"
    assert model.invoke(PROMPT) == "third"
    assert control.current() is None


# Not LocMemCache (its default MAX_ENTRIES, 300, culls keys at random once 216 scopes write)
# nor SQLite (16 writing threads lock its table: misses, not leaks).
@pytest.mark.parametrize("kind", ["redis", "alias-pymemcache", "alias-django-redis"])
def test_two_hundred_tasks_and_sixteen_threads_each_get_their_own_scopes_answers(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    errors: list[str] = []

    def check(scope: str, round_: int) -> None:
        with llm_cache_control(scope=scope):
            cache.update(PROMPT, LLM, text_generations(f"{scope} {round_}"))
            found = cache.lookup(PROMPT, LLM)
        if found != text_generations(f"{scope} {round_}"):
            errors.append(f"{scope} read {found}")

    async def task(index: int) -> None:
        scope = f"task:{index}"
        for round_ in range(3):
            with llm_cache_control(scope=scope):
                await cache.aupdate(PROMPT, LLM, text_generations(f"{scope} {round_}"))
                await asyncio.sleep(0)  # let the other tasks interleave
                found = await cache.alookup(PROMPT, LLM)
            if found != text_generations(f"{scope} {round_}"):
                errors.append(f"{scope} read {found}")
        if control.current() is not None:
            errors.append(f"{scope} left directives behind")

    async def tasks() -> None:
        await asyncio.gather(*(task(index) for index in range(200)))

    def thread(index: int) -> None:
        for round_ in range(10):
            check(f"thread:{index}", round_)
        if control.current() is not None:
            errors.append(f"thread:{index} left directives behind")

    threads = [threading.Thread(target=thread, args=(index,)) for index in range(16)]
    for worker in threads:
        worker.start()
    asyncio.run(tasks())
    for worker in threads:
        worker.join(60)
    assert errors == []
    assert cache.lookup(PROMPT, LLM) is None  # nothing was written unscoped
    assert control.current() is None


async def test_directives_follow_sync_to_async_and_stay_inside_their_task() -> None:
    seen: list[Any] = []

    def in_thread() -> None:
        seen.append(control.current())

    async def other_task() -> None:
        seen.append(control.current())

    with llm_cache_control("refresh", scope="tenant:a"):
        await sync_to_async(in_thread)()
        started = asyncio.get_running_loop().create_task(other_task())  # copies this context
    await started
    await asyncio.get_running_loop().create_task(other_task())  # made outside the block
    assert [given.scope if given else None for given in seen] == ["tenant:a", "tenant:a", None]


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_a_refresh_caller_never_waits_for_another_callers_flight(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind, single_flight=60)
    assert cache.lookup(PROMPT, LLM) is None  # this thread now leads the flight, for up to 60 s

    def refresh() -> None:
        with llm_cache_control("refresh"):
            assert cache.lookup(PROMPT, LLM) is None
            cache.update(PROMPT, LLM, text_generations("fresh"))

    run_bounded(refresh, limit=30)  # in another thread: it would wait up to 60 s on the flight
    assert cache.lookup(PROMPT, LLM) == text_generations("fresh")
    assert cache.stats is not None and cache.stats.refreshed == 1


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_a_plain_caller_waiting_on_a_flight_takes_a_refresh_callers_fresh_answer(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind, single_flight=60)
    assert cache.single_flight is not None
    assert cache.lookup(PROMPT, LLM) is None  # this thread leads the flight, and never answers in the test
    found: list[Any] = []
    waiter = threading.Thread(target=lambda: found.append(cache.lookup(PROMPT, LLM)), daemon=True)
    waiter.start()
    wait_until(lambda: cache.single_flight is not None and cache.single_flight.waiting() == 1, 30, "a plain waiter")

    def refresh() -> None:
        with llm_cache_control("refresh"):
            assert cache.lookup(PROMPT, LLM) is None
            cache.update(PROMPT, LLM, text_generations("fresh"))

    run_bounded(refresh, limit=30)  # it does not wait on the flight; its write ends it
    waiter.join(30)
    assert found == [text_generations("fresh")]  # the waiter took the fresh answer, not a model call
    assert cache.stats is not None and (cache.stats.coalesced, cache.stats.refreshed) == (1, 1)


@pytest.mark.parametrize("kind", ["redis", "memcached"])
@pytest.mark.parametrize("mode", ["no-store", "off"])
def test_a_call_whose_answer_is_not_stored_never_leads_a_flight(
    kind: str, mode: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind, single_flight=60)
    assert cache.single_flight is not None
    with llm_cache_control(mode):
        assert cache.lookup(PROMPT, LLM) is None
        assert len(cache.single_flight) == 0
    found: list[Any] = []
    run_bounded(lambda: found.append(cache.lookup(PROMPT, LLM)), limit=30)  # no flight to wait for
    assert found == [None]
