"""Per-call directives (``llm_cache_control``, config metadata): each on every cache kind."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from langchain_core.language_models import FakeListChatModel, FakeListLLM

from llmcache_django import cached, llm_cache_control
from llmcache_django.core import codec, control
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import entry_digest
from llmcache_django.integrations.replay import MARKER_KEY
from tests.helpers import text_generations

QUESTION = "What is the capital of France?"
LLM = "model=test temperature=0"


def answers(cache: LLMCache, *texts: str) -> FakeListLLM:
    """A real LangChain model on ``cache`` giving ``texts`` in turn."""
    return FakeListLLM(responses=list(texts), cache=cache)


def plant_aged(cache: LLMCache, prompt: str, llm_string: str, text: str, age: float) -> None:
    """Store an entry for ``(prompt, llm_string)`` written ``age`` seconds ago."""
    entry = codec.new_entry(prompt, "test", codec.llm_hash(llm_string), text_generations(text), None)
    aged = dataclasses.replace(entry, created=time.time() - age)
    cache.store.set(entry_digest(prompt, llm_string), codec.encode(aged), None)


def test_refresh_calls_the_model_and_a_repeat_replays_the_new_answer(llm_cache: LLMCache) -> None:
    model = answers(llm_cache, "first", "second", "third")
    assert model.invoke(QUESTION) == "first"
    assert model.invoke(QUESTION) == "first"
    with llm_cache_control("refresh"):
        assert model.invoke(QUESTION) == "second"
    assert model.invoke(QUESTION) == "second"
    assert llm_cache.stats is not None and llm_cache.stats.refreshed == 1


def test_no_store_reads_hits_and_never_writes(llm_cache: LLMCache) -> None:
    model = answers(llm_cache, "first", "second", "third", "fourth")
    with llm_cache_control("no-store"):
        assert model.invoke(QUESTION) == "first"
        assert model.invoke(QUESTION) == "second"  # nothing was kept
    assert model.invoke(QUESTION) == "third"
    with llm_cache_control("no-store"):
        assert model.invoke(QUESTION) == "third"  # a hit is still served
    assert llm_cache.stats is not None and llm_cache.stats.bypassed == 2 and llm_cache.stats.writes == 1


def test_off_neither_reads_nor_writes(llm_cache: LLMCache) -> None:
    model = answers(llm_cache, "first", "second", "third")
    assert model.invoke(QUESTION) == "first"
    with llm_cache_control("off"):
        assert model.invoke(QUESTION) == "second"
    assert model.invoke(QUESTION) == "first"
    assert llm_cache.stats is not None and llm_cache.stats.bypassed == 2


def test_max_age_refuses_an_older_entry_and_stores_the_fresh_answer(llm_cache: LLMCache) -> None:
    plant_aged(llm_cache, "p", LLM, "old", age=3600)
    with llm_cache_control(max_age=7200):
        assert llm_cache.lookup("p", LLM) == text_generations("old")
    with llm_cache_control(max_age=600):
        assert llm_cache.lookup("p", LLM) is None
        llm_cache.update("p", LLM, text_generations("new"))
        assert llm_cache.lookup("p", LLM) == text_generations("new")
    assert llm_cache.stats is not None and llm_cache.stats.refreshed == 1


def test_ttl_sets_the_expiry_of_entries_written_in_the_block(llm_cache: LLMCache) -> None:
    with llm_cache_control(ttl=60):
        llm_cache.update("p", LLM, text_generations("x"))
    entry = llm_cache.lookup_entry("p", LLM)
    assert entry is not None and entry.expires is not None
    assert entry.expires - entry.created == pytest.approx(60, abs=1)


def test_a_scope_reads_only_its_own_entries(llm_cache: LLMCache) -> None:
    with llm_cache_control(scope="tenant:acme"):
        llm_cache.update("p", LLM, text_generations("acme's"))
    with llm_cache_control(scope="tenant:globex"):
        assert llm_cache.lookup("p", LLM) is None
        llm_cache.update("p", LLM, text_generations("globex's"))
    assert llm_cache.lookup("p", LLM) is None  # the unscoped cache is its own partition
    with llm_cache_control(scope="tenant:acme"):
        assert llm_cache.lookup("p", LLM) == text_generations("acme's")
    assert llm_cache.count_entries() == 2


async def test_each_directive_on_the_async_path(llm_cache: LLMCache) -> None:
    model = answers(llm_cache, "first", "second", "third", "fourth", "fifth")
    assert await model.ainvoke(QUESTION) == "first"
    with llm_cache_control("refresh"):
        assert await model.ainvoke(QUESTION) == "second"
    assert await model.ainvoke(QUESTION) == "second"
    with llm_cache_control("off"):
        assert await model.ainvoke(QUESTION) == "third"
    with llm_cache_control("no-store", scope="user:1"):
        assert await model.ainvoke(QUESTION) == "fourth"
    with llm_cache_control(scope="user:1"):
        assert await model.ainvoke(QUESTION) == "fifth"
    assert await model.ainvoke(QUESTION) == "second"
    await asyncio.to_thread(plant_aged, llm_cache, "p", LLM, "old", 3600)
    with llm_cache_control(max_age=600):
        assert await llm_cache.alookup("p", LLM) is None
    with llm_cache_control(max_age=7200):
        assert await llm_cache.alookup("p", LLM) == text_generations("old")


def test_config_metadata_directs_a_cached_model(llm_cache: LLMCache) -> None:
    model = cached(FakeListChatModel(responses=["first", "second", "third"]), cache=llm_cache)
    assert model.invoke(QUESTION).content == "first"
    refreshed = model.invoke(QUESTION, config={"metadata": {"llm_cache": "refresh"}})
    assert refreshed.content == "second"
    assert refreshed.response_metadata[MARKER_KEY]["refreshed"] is True
    hit = model.invoke(QUESTION)
    assert hit.content == "second" and hit.response_metadata[MARKER_KEY]["hit"] is True
    scoped = model.invoke(QUESTION, config={"metadata": {"llm_cache": {"scope": "user:7"}}})
    assert scoped.content == "third"
    streamed = list(model.stream(QUESTION, config={"metadata": {"llm_cache": {"scope": "user:7"}}}))
    assert "".join(str(chunk.content) for chunk in streamed) == "third"


async def test_config_metadata_directs_a_cached_model_async(llm_cache: LLMCache) -> None:
    model = cached(FakeListChatModel(responses=["first", "second", "third"]), cache=llm_cache)
    assert (await model.ainvoke(QUESTION)).content == "first"
    refreshed = await model.ainvoke(QUESTION, config={"metadata": {"llm_cache": "refresh"}})
    assert refreshed.content == "second" and refreshed.response_metadata[MARKER_KEY]["refreshed"] is True
    off = [chunk async for chunk in model.astream(QUESTION, config={"metadata": {"llm_cache": "off"}})]
    assert "".join(str(chunk.content) for chunk in off) == "third"
    assert (await model.ainvoke(QUESTION)).content == "second"
    assert control.current() is None


@pytest.mark.parametrize("cache_kind", ["redis", "memcached", "alias-locmem"])
def test_the_marker_names_the_scope_that_answered(llm_cache: LLMCache) -> None:
    model = cached(FakeListChatModel(responses=["for user 7", "for everyone"]), cache=llm_cache)

    def marker(**metadata: object) -> dict[str, object]:
        message = model.invoke(QUESTION, config={"metadata": metadata})
        return message.response_metadata[MARKER_KEY]  # type: ignore[no-any-return]

    assert marker(llm_cache={"scope": "user:7"})["scope"] == "user:7"  # the miss, stored in the scope
    hit = marker(llm_cache={"scope": "user:7"})
    assert (hit["hit"], hit["scope"]) == (True, "user:7")
    assert "scope" not in marker()  # unscoped: its own answer, no scope named
    assert "scope" not in marker()
    with llm_cache_control(scope="user:7"):
        streamed = list(model.stream(QUESTION))
    assert streamed[-1].response_metadata[MARKER_KEY]["scope"] == "user:7"
