"""Whatever is under our keys, the model call goes on: no exception, no pickle run, bounded memory.

Every value of :mod:`tests.hostile` is planted under the key a real LangChain model looks up, on
every kind of cache, and read back through ``lookup``, ``alookup``, ``invoke`` and ``ainvoke``.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import Generation

from llmcache_django.cache import LLMCache
from llmcache_django.keys import entry_digest
from tests.helpers import chat_generation, plant, stored_bytes
from tests.hostile import Exploit, bombs, hostile_values

#: invoke()/ainvoke() are run on every INVOKE_EVERY-th value (lookup()/alookup() on all of them).
INVOKE_EVERY = 5


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
    return isinstance(result, list) and all(isinstance(generation, Generation) for generation in result)


def test_hostile_values_never_break_lookup_or_invoke(llm_cache: LLMCache) -> None:
    model, prompt, llm_string, valid = warmed_model(llm_cache)
    values = list(hostile_values(valid, llm_cache.max_entry_bytes))
    assert len(values) >= 1000
    unsafe = []
    for index, (label, value) in enumerate(values):
        plant(llm_cache, prompt, llm_string, value)
        errors = llm_cache.stats.errors  # type: ignore[union-attr]
        if not read_is_safe(llm_cache, llm_cache.lookup(prompt, llm_string), errors):
            unsafe.append(label)
        if index % INVOKE_EVERY == 0:
            plant(llm_cache, prompt, llm_string, value)
            assert isinstance(model.invoke("What is the capital of France?"), AIMessage)
    assert unsafe == []
    assert Exploit.ran is False


async def test_hostile_values_never_break_alookup_or_ainvoke(llm_cache: LLMCache) -> None:
    # Sync calls from an async test run in a thread, as Django requires for the database.
    model, prompt, llm_string, valid = await asyncio.to_thread(warmed_model, llm_cache)
    values = list(hostile_values(valid, llm_cache.max_entry_bytes))
    unsafe = []
    for index, (label, value) in enumerate(values):
        await llm_cache.store.aset(entry_digest(prompt, llm_string), value, None)
        errors = llm_cache.stats.errors  # type: ignore[union-attr]
        if not read_is_safe(llm_cache, await llm_cache.alookup(prompt, llm_string), errors):
            unsafe.append(label)
        if index % INVOKE_EVERY == 0:
            await llm_cache.store.aset(entry_digest(prompt, llm_string), value, None)
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
