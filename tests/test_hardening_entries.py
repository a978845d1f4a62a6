"""Values under our keys that broke, paused or bloated the cache: each is now a miss for its key only.

One regression test per way (the hardening issue's items 1, 2, 3 and the database half of 5),
on every kind of store it applies to, sync and async.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable

import orjson
import pytest
from django.core.cache import caches
from django.db import connection
from langchain_core.language_models import FakeListChatModel, FakeListLLM

from llmcache_django.core import codec
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import entry_digest
from tests.conftest import GENERATIONAL_KINDS, kind_param
from tests.helpers import plant, stored_bytes, text_generations

LLM = "model=test"


def empty_generations_value(cache: LLMCache, prompt: str, llm_string: str) -> bytes:
    """A well-formed entry of ours for ``(prompt, llm_string)`` whose generation list is empty."""
    cache.update(prompt, llm_string, text_generations("x"))
    valid = stored_bytes(cache, prompt, llm_string)
    assert valid is not None
    fields = orjson.loads(codec._unwrap(valid, codec.MAX_DECOMPRESSED_BYTES))
    return codec.MAGIC_JSON + orjson.dumps({**fields, "g": []})


# Item 1: an entry with no generation is not a hit


def test_an_entry_with_no_generation_is_a_miss_and_the_model_answers(llm_cache: LLMCache) -> None:
    model = FakeListChatModel(responses=["live"], cache=llm_cache)
    model.invoke("q")
    (info,) = llm_cache.entries()
    plant(llm_cache, info.prompt, info.llm_string, empty_generations_value(llm_cache, info.prompt, info.llm_string))
    errors = llm_cache.stats.errors  # type: ignore[union-attr]
    assert llm_cache.lookup(info.prompt, info.llm_string) is None
    assert llm_cache.stats.errors == errors + 1  # type: ignore[union-attr]
    assert model.invoke("q").content == "live"  # was IndexError inside LangChain
    assert llm_cache.lookup(info.prompt, info.llm_string) is not None  # and the live answer replaced it


async def test_an_entry_with_no_generation_is_a_miss_for_ainvoke(llm_cache: LLMCache) -> None:
    model = FakeListLLM(responses=["live"], cache=llm_cache)
    await model.ainvoke("q")
    (info,) = await asyncio.to_thread(lambda: list(llm_cache.entries()))
    value = await asyncio.to_thread(empty_generations_value, llm_cache, info.prompt, info.llm_string)
    await llm_cache.store.aset(entry_digest(info.prompt, info.llm_string), value, None)
    assert await llm_cache.alookup(info.prompt, info.llm_string) is None
    assert await model.ainvoke("q") == "live"


def test_no_generation_is_never_written() -> None:
    with pytest.raises(codec.UnsupportedGenerationError, match="from 1 to 128"):
        codec.new_entry("p", "m", "h", [], None)


# Item 3: a generation counter that is not a plain number is replaced, on every generational store


@pytest.mark.parametrize("kind", [kind_param(kind) for kind in GENERATIONAL_KINDS])
@pytest.mark.parametrize("foreign", [b"1:2", b"abc", b"12:", b" 7", b"-1", b"1" * 21])
def test_a_foreign_generation_value_is_replaced_and_entries_hit_again(
    kind: str, foreign: bytes, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = make_llm_cache(kind)
    store = cache.store
    generation_keys = getattr(store, "_generation_keys", {"": store.generation_key}).values()  # type: ignore[attr-defined]
    for generation_key in generation_keys:
        store._set(generation_key, foreign, None)  # type: ignore[attr-defined]
    store._generations.clear()  # type: ignore[attr-defined]  # as a process that starts now sees it
    cache.update("p", LLM, text_generations("x"))
    assert cache.lookup("p", LLM) == text_generations("x")  # was a miss for good with b"1:2"
    cache.clear()  # the replaced counter still counts
    assert cache.lookup("p", LLM) is None


@pytest.mark.parametrize("kind", [kind_param(kind) for kind in GENERATIONAL_KINDS])
async def test_a_foreign_generation_value_is_replaced_for_async_calls(
    kind: str, make_llm_cache: Callable[..., LLMCache]
) -> None:
    cache = await asyncio.to_thread(make_llm_cache, kind)
    store = cache.store
    await asyncio.to_thread(store._set, store.generation_key, b"1:2", None)  # type: ignore[attr-defined]
    store._generations.clear()  # type: ignore[attr-defined]
    await cache.aupdate("p", LLM, text_generations("x"))
    assert await cache.alookup("p", LLM) == text_generations("x")


# Item 2: a database row that is not valid UTF-8 is a miss for its key, not an outage


def set_row_text(cache: LLMCache, name: str, sql: str, *params: object) -> None:
    """Set the database row of ``name`` to the SQL expression ``sql``, made by SQLite itself."""
    key = caches["llm"].make_key(f"{cache.namespace}:{name}")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE llmcache_tests_table SET value = {sql} WHERE cache_key = %s", [*params, key])
        assert cursor.rowcount == 1


def plant_undecodable_row(cache: LLMCache, prompt: str) -> None:
    set_row_text(cache, entry_digest(prompt, LLM), "CAST(X'FFFE4C43316A' AS TEXT)")


@pytest.mark.django_db(transaction=True)
def test_an_undecodable_database_row_misses_its_key_and_is_replaced(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("alias-database")
    cache.update("good", LLM, text_generations("kept"))
    cache.update("bad", LLM, text_generations("old"))
    plant_undecodable_row(cache, "bad")
    assert cache.lookup("bad", LLM) is None
    assert cache.lookup("good", LLM) == text_generations("kept")  # the cache was not paused
    assert not cache.store.paused_until
    cache.update("bad", LLM, text_generations("new"))
    assert cache.lookup("bad", LLM) == text_generations("new")


@pytest.mark.django_db(transaction=True)
async def test_an_undecodable_database_row_misses_its_key_for_async_calls(
    make_llm_cache: Callable[..., LLMCache],
) -> None:
    cache = await asyncio.to_thread(make_llm_cache, "alias-database")
    await cache.aupdate("good", LLM, text_generations("kept"))
    await cache.aupdate("bad", LLM, text_generations("old"))
    await asyncio.to_thread(plant_undecodable_row, cache, "bad")
    assert await cache.alookup("bad", LLM) is None
    assert await cache.alookup("good", LLM) == text_generations("kept")
    await cache.aupdate("bad", LLM, text_generations("new"))
    assert await cache.alookup("bad", LLM) == text_generations("new")


# Item 5 (database): an oversize row is measured, never fetched

OVERSIZE_ROW_BYTES = 32 * 1024 * 1024


def plant_oversize_row(cache: LLMCache, prompt: str) -> None:
    # Built by SQLite itself: the test process never holds the row.
    set_row_text(cache, entry_digest(prompt, LLM), "printf('%%0*d', %s, 0)", OVERSIZE_ROW_BYTES)


@pytest.mark.django_db(transaction=True)
def test_an_oversize_database_row_is_refused_unread(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache("alias-database")
    cache.update("good", LLM, text_generations("kept"))
    cache.update("big", LLM, text_generations("x"))
    plant_oversize_row(cache, "big")
    errors = cache.stats.errors  # type: ignore[union-attr]
    tracemalloc.start()
    try:
        assert cache.lookup("big", LLM) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < cache.max_entry_bytes  # the 32 MiB row (and its base64 decoding) never reached Python
    assert cache.stats.errors == errors + 1  # type: ignore[union-attr]  # logged and counted
    assert cache.lookup("good", LLM) == text_generations("kept")
    assert not cache.store.paused_until


@pytest.mark.django_db(transaction=True)
async def test_an_oversize_database_row_is_refused_unread_by_alookup(make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = await asyncio.to_thread(make_llm_cache, "alias-database")
    await cache.aupdate("big", LLM, text_generations("x"))
    await asyncio.to_thread(plant_oversize_row, cache, "big")
    errors = cache.stats.errors  # type: ignore[union-attr]
    assert await cache.alookup("big", LLM) is None
    assert cache.stats.errors == errors + 1  # type: ignore[union-attr]
