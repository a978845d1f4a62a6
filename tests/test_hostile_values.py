"""Whatever is under our keys, the model call goes on: no exception, no pickle run, bounded memory.

Every value of :mod:`tests.hostile` is planted under the key a real LangChain model looks up, on
one kind of cache per store (decoding does not depend on the store; how a store reads, bounds and
hands back the bytes does), and read back through ``lookup``, ``alookup``, ``invoke`` and ``ainvoke``.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import Generation

from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import entry_digest
from llmcache_django.core.stats import COUNTERS
from tests.conftest import GENERATIONAL_KINDS, kind_param
from tests.helpers import chat_generation, plant, stored_bytes, text_generations
from tests.hostile import BOOKKEEPING_VALUES, Exploit, bombs, hostile_values

#: invoke()/ainvoke() are run on every INVOKE_EVERY-th value (lookup()/alookup() on all of them).
INVOKE_EVERY = 5
#: One kind per store: each reads (and bounds) the bytes its own way. The other kinds share one
#: of these stores (the contract suite checks they do), so the 1,000+ values add nothing there.
HOSTILE_KINDS = [
    "redis",  # RedisStore on a sync client (async calls on the derived asyncio client)
    "compat-async-redis",  # RedisStore on an asyncio client alone (sync calls through its loop)
    "redis-cluster",  # RedisClusterStore
    "memcached",  # MemcachedStore
    "alias-pymemcache-pool",  # MemcachedPoolStore
    "alias-database",  # DatabaseStore
    "alias-locmem",  # DjangoStore
]


@pytest.fixture(params=[kind_param(kind) for kind in HOSTILE_KINDS])
def hostile_cache(request: pytest.FixtureRequest, make_llm_cache: Callable[..., LLMCache]) -> LLMCache:
    """An empty cache on each store in turn."""
    return make_llm_cache(request.param)


def warmed_model(cache: LLMCache) -> tuple[FakeListChatModel, str, str, bytes]:
    """A chat model on ``cache`` that has answered once, with its key and its stored value."""
    model = FakeListChatModel(responses=["a live answer"], cache=cache)
    model.invoke("What is the capital of France?")
    (info,) = cache.entries()
    # Every field a provider's answer has (tools, usage, content blocks), to corrupt one by one.
    cache.update(info.prompt, info.llm_string, [chat_generation("Paris."), chat_generation("Lyon?")])
    valid = stored_bytes(cache, info.prompt, info.llm_string)
    assert valid is not None
    return model, info.prompt, info.llm_string, valid


def read_is_safe(cache: LLMCache, result: list[Generation] | None, errors_before: int) -> bool:
    """A hit is a list of generations; a miss was logged and counted as an error."""
    assert cache.stats is not None
    if result is None:
        return cache.stats.errors == errors_before + 1
    # LangChain reads a hit's first generation: an empty list is no hit.
    return (
        isinstance(result, list) and bool(result) and all(isinstance(generation, Generation) for generation in result)
    )


def test_hostile_values_never_break_lookup_or_invoke(hostile_cache: LLMCache) -> None:
    model, prompt, llm_string, valid = warmed_model(hostile_cache)
    values = list(hostile_values(valid, hostile_cache.max_entry_bytes))
    assert len(values) >= 1000
    unsafe = []
    for index, (label, value) in enumerate(values):
        plant(hostile_cache, prompt, llm_string, value)
        errors = hostile_cache.stats.errors  # type: ignore[union-attr]
        if not read_is_safe(hostile_cache, hostile_cache.lookup(prompt, llm_string), errors):
            unsafe.append(label)
        if index % INVOKE_EVERY == 0:
            plant(hostile_cache, prompt, llm_string, value)
            assert isinstance(model.invoke("What is the capital of France?"), AIMessage)
    assert unsafe == []
    assert Exploit.ran is False


async def test_hostile_values_never_break_alookup_or_ainvoke(hostile_cache: LLMCache) -> None:
    # Sync calls from an async test run in a thread, as Django requires for the database.
    model, prompt, llm_string, valid = await asyncio.to_thread(warmed_model, hostile_cache)
    values = list(hostile_values(valid, hostile_cache.max_entry_bytes))
    unsafe = []
    for index, (label, value) in enumerate(values):
        await hostile_cache.store.aset(entry_digest(prompt, llm_string), value, None)
        errors = hostile_cache.stats.errors  # type: ignore[union-attr]
        if not read_is_safe(hostile_cache, await hostile_cache.alookup(prompt, llm_string), errors):
            unsafe.append(label)
        if index % INVOKE_EVERY == 0:
            await hostile_cache.store.aset(entry_digest(prompt, llm_string), value, None)
            assert isinstance(await model.ainvoke("What is the capital of France?"), AIMessage)
    assert unsafe == []
    assert Exploit.ran is False


@pytest.mark.parametrize("kind", ["redis", "memcached", "alias-locmem"])
def test_a_bomb_costs_a_bounded_amount_of_memory(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(kind)
    peaks = {}
    for label, value in bombs(cache.max_entry_bytes):
        plant(cache, "p", "llm", value)
        tracemalloc.start()
        try:
            assert cache.lookup("p", "llm") is None
            peaks[label] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # Decoding may hold the inflated JSON (at most DECODED_PER_STORED x the entry limit) and
    # what orjson builds from at most MAX_JSON_VALUES values before the checks reject it.
    assert max(peaks.values()) < 24 * cache.max_entry_bytes, peaks


@pytest.mark.parametrize("kind", [kind_param(kind) for kind in GENERATIONAL_KINDS])
def test_hostile_bookkeeping_values_never_stop_hits_counts_or_clear(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    store = cache.store
    generation_keys = getattr(store, "_generation_keys", {"": store.generation_key}).values()  # type: ignore[attr-defined]
    for value in BOOKKEEPING_VALUES:
        for key in [*generation_keys, store.key("stats:hits"), store.key("stats:writes")]:  # type: ignore[attr-defined]
            store._set(key, value, None)  # type: ignore[attr-defined]
        store._generations.clear()  # type: ignore[attr-defined]  # as a process starting now sees them
        cache.update("p", "llm", text_generations(repr(value)))
        assert cache.lookup("p", "llm") == text_generations(repr(value)), value
        cache.flush_stats()
        shared = cache.shared_stats()
        assert all(type(shared[counter]) is int for counter in COUNTERS), (value, shared)
        cache.clear()
        assert cache.lookup("p", "llm") is None, value


#: Row texts SQLite hands back as invalid UTF-8 (it stores whatever bytes it is given).
UNDECODABLE_ROWS = ["X'FF'", "X'C0AF'", "X'4C43316AFF'", "X'313A4C43316A7B7DFE'", "CAST(X'EDA080' AS TEXT)"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("row", UNDECODABLE_ROWS)
def test_undecodable_database_rows_are_misses_for_their_keys(row: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    from tests.test_hardening_entries import set_row_text

    cache = make_llm_cache("alias-database")
    model, prompt, llm_string, _ = warmed_model(cache)
    cache.update("other", llm_string, text_generations("kept"))
    for name in [entry_digest(prompt, llm_string), "generation"]:
        set_row_text(cache, name, f"CAST({row} AS TEXT)")
        assert isinstance(model.invoke("What is the capital of France?"), AIMessage)
        assert not cache.store.paused_until  # a bad row is not an outage
        cache.store._generations.clear()  # type: ignore[attr-defined]
    cache.update(prompt, llm_string, text_generations("replaced"))
    assert cache.lookup(prompt, llm_string) == text_generations("replaced")
