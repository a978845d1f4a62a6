"""End to end: real LangChain models through the global cache and a per-model ``cache=``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models import FakeListChatModel, FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage

from llmcache_django.core.cache import LLMCache


def test_fake_llm_second_call_is_served_from_the_global_cache(global_cache: LLMCache) -> None:
    llm = FakeListLLM(responses=["first", "second"])
    assert llm.invoke("What is 2 + 2?") == "first"
    assert llm.invoke("What is 2 + 2?") == "first"
    assert llm.i == 1  # the model answered once
    assert global_cache.stats.hits == 1  # type: ignore[union-attr]


def test_chat_model_second_call_is_served_from_the_global_cache(global_cache: LLMCache) -> None:
    chat = FakeListChatModel(responses=["first", "second"])
    assert chat.invoke("hello").content == "first"
    assert chat.invoke("hello").content == "first"
    assert chat.i == 1


def test_generic_chat_model_keeps_tool_calls_and_usage_through_the_cache(global_cache: LLMCache) -> None:
    answer = AIMessage(
        content="Calling the weather tool.",
        tool_calls=[{"name": "weather", "args": {"city": "Oslo"}, "id": "call_9"}],
        usage_metadata={"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
    )
    chat = GenericFakeChatModel(messages=iter([answer]))  # a second model call would raise
    first = chat.invoke("weather in Oslo?")
    second = chat.invoke("weather in Oslo?")
    assert second.tool_calls == first.tool_calls == answer.tool_calls
    # LangChain itself adds ``total_cost: 0`` to the usage of an answer served from a cache.
    assert {k: second.usage_metadata[k] for k in answer.usage_metadata} == answer.usage_metadata  # type: ignore[index, union-attr]


def test_different_prompts_and_model_settings_are_cached_apart(global_cache: LLMCache) -> None:
    chat = FakeListChatModel(responses=["a", "b", "c"])
    assert chat.invoke("one").content == "a"
    assert chat.invoke("two").content == "b"
    other_settings = FakeListChatModel(responses=["z"], sleep=0.0001)
    assert other_settings.invoke("one").content == "z"


async def test_async_calls_are_served_from_the_global_cache(global_cache: LLMCache) -> None:
    chat = FakeListChatModel(responses=["first", "second"])
    assert (await chat.ainvoke("hello")).content == "first"
    assert (await chat.ainvoke("hello")).content == "first"
    assert chat.i == 1


def test_batch_is_served_from_the_cache(global_cache: LLMCache) -> None:
    llm = FakeListLLM(responses=["a", "b", "c", "d"])
    first = llm.batch(["x", "y"], config={"max_concurrency": 1})
    assert llm.batch(["x", "y"]) == first
    assert llm.i == 2


async def test_abatch_is_served_from_the_cache(global_cache: LLMCache) -> None:
    chat = FakeListChatModel(responses=["a", "b", "c", "d"])
    first = [m.content for m in await chat.abatch(["x", "y"], config={"max_concurrency": 1})]
    assert [m.content for m in await chat.abatch(["x", "y"])] == first
    assert chat.i == 2


@pytest.mark.parametrize("kind", ["redis", "compat-async-redis", "memcached", "alias-locmem"])
def test_a_per_model_cache_is_used_without_a_global_cache(kind: str, make_llm_cache: Callable[..., LLMCache]) -> None:
    cache = make_llm_cache(kind)
    previous = get_llm_cache()
    set_llm_cache(None)
    try:
        chat = FakeListChatModel(responses=["first", "second"], cache=cache)
        assert [chat.invoke("hi").content for _ in range(2)] == ["first", "first"]
        uncached = FakeListChatModel(responses=["first", "second"], cache=False)
        assert [uncached.invoke("hi").content for _ in range(2)] == ["first", "second"]
    finally:
        set_llm_cache(previous)
