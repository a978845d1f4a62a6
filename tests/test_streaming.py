"""``cached(model)``: streams replay hits and record misses, on every kind of LLM cache."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.utils import message_chunk_to_message

from llmcache_django import cached
from llmcache_django.cache import LLMCache
from llmcache_django.replay import MARKER_KEY
from tests.streaming_models import ToolCallingChatModel

QUESTION = "Which cache should hold my LLM answers?"
ANSWER = "Redis, if you already run it; otherwise the database cache of your Django project works."
USAGE = {"input_tokens": 9, "output_tokens": 17, "total_tokens": 26}


def fake_model(answer: str = ANSWER) -> GenericFakeChatModel:
    """A model that streams ``answer`` word by word and then a second, different answer."""
    first = AIMessage(content=answer, usage_metadata=USAGE, response_metadata={"model_name": "fake-1"})  # type: ignore[arg-type]
    return GenericFakeChatModel(messages=itertools.chain([first], itertools.repeat(AIMessage(content="Different."))))


def aggregate(chunks: Iterable[AIMessageChunk]) -> AIMessage:
    """What code that adds up the chunks gets, as a message."""
    chunks = list(chunks)
    total = chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0]
    return message_chunk_to_message(total)  # type: ignore[return-value]


def unmarked(message: BaseMessage) -> dict[str, Any]:
    """``message`` as a dict without the hit marker, to compare with what was stored."""
    data = message.model_dump(exclude={"type", "tool_call_chunks", "chunk_position"})
    data["response_metadata"] = {k: v for k, v in data["response_metadata"].items() if k != MARKER_KEY}
    return data


def stored_message(cache: LLMCache, model: BaseChatModel, question: str = QUESTION) -> BaseMessage | None:
    """What the LLM cache holds for ``question`` under the key ``invoke`` uses, read directly."""
    from langchain_core.load import dumps

    generations = cache.lookup(dumps([HumanMessage(content=question)]), model._get_llm_string())
    return None if generations is None else generations[0].message  # type: ignore[attr-defined]


def test_second_stream_replays_the_first_without_a_model_call(llm_cache: LLMCache) -> None:
    model = cached(fake_model(), cache=llm_cache)
    live = list(model.stream(QUESTION))
    replayed = list(model.stream(QUESTION))

    assert aggregate(replayed).content == ANSWER
    assert unmarked(aggregate(replayed)) == unmarked(aggregate(live))
    assert live[-1].response_metadata[MARKER_KEY]["hit"] is False
    assert replayed[-1].response_metadata[MARKER_KEY]["hit"] is True
    assert 1 < len(replayed) < len(live)  # in pieces, not one chunk, nor one per word
    assert model.invoke("next").content == "Different."  # the model's second answer was never used up


def test_streamed_answer_is_a_hit_for_invoke(llm_cache: LLMCache) -> None:
    model = cached(fake_model(), cache=llm_cache)
    streamed = aggregate(model.stream(QUESTION))
    invoked = model.invoke(QUESTION)

    assert invoked.content == ANSWER
    assert invoked.response_metadata[MARKER_KEY]["hit"] is True
    assert streamed.response_metadata[MARKER_KEY] == {"hit": False, "alias": llm_cache.alias or None}


def test_invoked_answer_is_replayed_by_stream(llm_cache: LLMCache) -> None:
    model = cached(fake_model(), cache=llm_cache)
    invoked = model.invoke(QUESTION)
    chunks = list(model.stream(QUESTION))

    assert invoked.response_metadata[MARKER_KEY]["hit"] is False
    assert len(chunks) > 2
    assert unmarked(aggregate(chunks)) == unmarked(invoked)
    assert chunks[-1].response_metadata[MARKER_KEY]["hit"] is True
    assert chunks[-1].usage_metadata == USAGE  # usage on the last chunk


async def test_astream_replays_what_astream_recorded(llm_cache: LLMCache) -> None:
    model = cached(fake_model(), cache=llm_cache)
    live = [chunk async for chunk in model.astream(QUESTION)]
    replayed = [chunk async for chunk in model.astream(QUESTION)]
    invoked = await model.ainvoke(QUESTION)

    assert unmarked(aggregate(replayed)) == unmarked(aggregate(live))
    assert replayed[-1].response_metadata[MARKER_KEY]["hit"] is True
    assert invoked.response_metadata[MARKER_KEY]["hit"] is True


def test_tool_calls_stream_from_the_cache_as_tool_call_chunks(llm_cache: LLMCache) -> None:
    bare = ToolCallingChatModel()
    model = cached(bare, cache=llm_cache).bind_tools([lookup_weather])
    live = aggregate(model.stream(QUESTION))
    chunks = list(model.stream(QUESTION))

    assert len(bare.calls) == 1
    assert any(chunk.tool_call_chunks for chunk in chunks)
    assert aggregate(chunks).tool_calls == live.tool_calls
    assert live.tool_calls == [
        {"name": "lookup_weather", "args": {"city": "Paris", "degrees": 21}, "id": "call_1", "type": "tool_call"}
    ]
    assert unmarked(aggregate(chunks)) == unmarked(live)


def lookup_weather(city: str, degrees: int) -> str:
    """Look up the weather in a city."""
    return f"{city}: {degrees} degrees"
