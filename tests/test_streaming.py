"""``cached(model)``: streams replay hits and record misses, on every kind of LLM cache."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.utils import message_chunk_to_message
from pydantic import BaseModel

from llmcache_django import cached
from llmcache_django.core.cache import LLMCache
from llmcache_django.integrations.replay import MARKER_KEY
from tests.streaming_models import ModelFailedError, ToolCallingChatModel, TwoAnswersChatModel

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


def test_a_structured_output_variant_streams_from_the_cache(llm_cache: LLMCache) -> None:
    bare = ToolCallingChatModel()
    structured = cached(bare, cache=llm_cache).with_structured_output(Weather)
    live = list(structured.stream(QUESTION))
    replayed = list(structured.stream(QUESTION))

    assert replayed[-1] == live[-1] == Weather(city="Paris", degrees=21)
    assert structured.invoke(QUESTION) == Weather(city="Paris", degrees=21)
    assert len(bare.calls) == 1


def test_tools_are_part_of_the_key(llm_cache: LLMCache) -> None:
    bare = ToolCallingChatModel()
    model = cached(bare, cache=llm_cache)
    with_tools = aggregate(model.bind_tools([lookup_weather]).stream(QUESTION))
    without_tools = aggregate(model.stream(QUESTION))

    assert with_tools.tool_calls and not without_tools.tool_calls
    assert without_tools.response_metadata[MARKER_KEY]["hit"] is False
    assert len(bare.calls) == 2


def test_usage_and_metadata_of_a_streamed_answer_are_stored_once_it_completes(llm_cache: LLMCache) -> None:
    bare = ToolCallingChatModel()
    live = aggregate(cached(bare, cache=llm_cache).stream(QUESTION))
    stored = stored_message(llm_cache, bare)

    assert stored is not None
    assert isinstance(stored, AIMessage)
    assert stored.usage_metadata == {"input_tokens": 7, "output_tokens": 11, "total_tokens": 18}
    assert stored.response_metadata == {"finish_reason": "stop", "model_name": "fake-tools-1"}  # no marker
    assert unmarked(stored) == unmarked(live)


def test_breaking_off_a_stream_stores_nothing(llm_cache: LLMCache) -> None:
    bare = ToolCallingChatModel()
    model = cached(bare, cache=llm_cache)
    for number, _chunk in enumerate(model.stream(QUESTION)):
        if number == 2:
            break
    abandoned = model.stream(QUESTION)
    next(abandoned)  # started, then dropped without being closed

    assert stored_message(llm_cache, bare) is None
    assert list(model.stream(QUESTION))[-1].response_metadata[MARKER_KEY]["hit"] is False


async def test_cancelling_an_astream_stores_nothing(llm_cache: LLMCache) -> None:
    import asyncio

    bare = ToolCallingChatModel()
    model = cached(bare, cache=llm_cache)
    started = asyncio.Event()

    async def consume() -> None:
        async for _chunk in model.astream(QUESTION):
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.ensure_future(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert stored_message(llm_cache, bare) is None


def test_an_exception_mid_stream_reaches_the_caller_and_stores_nothing(llm_cache: LLMCache) -> None:
    bare = ToolCallingChatModel(fail_after=3)
    received: list[AIMessageChunk] = []
    with pytest.raises(ModelFailedError, match="after 3 chunks"):
        received.extend(cached(bare, cache=llm_cache).stream(QUESTION))

    assert stored_message(llm_cache, bare) is None


async def test_an_exception_mid_astream_reaches_the_caller_and_stores_nothing(llm_cache: LLMCache) -> None:
    bare = ToolCallingChatModel(fail_after=3)
    with pytest.raises(ModelFailedError):
        async for _chunk in cached(bare, cache=llm_cache).astream(QUESTION):
            pass

    assert stored_message(llm_cache, bare) is None


def test_the_marker_is_never_stored_and_plain_lookups_return_what_was_stored(llm_cache: LLMCache) -> None:
    bare = fake_model()
    model = cached(bare, cache=llm_cache)
    list(model.stream(QUESTION))
    list(model.stream(QUESTION))
    model.invoke(QUESTION)
    stored = stored_message(llm_cache, bare)

    assert stored is not None
    assert MARKER_KEY not in stored.response_metadata


def test_a_conversation_with_a_cached_answer_in_it_has_the_same_key_as_with_a_live_one(llm_cache: LLMCache) -> None:
    model = cached(fake_model(), cache=llm_cache)
    live_answer = aggregate(model.stream(QUESTION))
    cached_answer = aggregate(model.stream(QUESTION))
    follow_up = HumanMessage(content="And for sessions?")

    first = aggregate(model.stream([HumanMessage(content=QUESTION), live_answer, follow_up]))
    second = aggregate(model.stream([HumanMessage(content=QUESTION), cached_answer, follow_up]))

    assert cached_answer.response_metadata[MARKER_KEY]["hit"] is True
    assert first.response_metadata[MARKER_KEY]["hit"] is False
    assert second.response_metadata[MARKER_KEY]["hit"] is True
    assert second.content == first.content


def test_an_answer_with_several_generations_replays_the_first_as_invoke_returns_it(llm_cache: LLMCache) -> None:
    bare = TwoAnswersChatModel()
    model = cached(bare, cache=llm_cache)
    result = model.generate([[HumanMessage(content=QUESTION)]])
    chunks = list(model.stream(QUESTION))

    assert [g.text for g in result.generations[0]] == ["Answer 1.", "Answer 2."]
    assert all(g.message.response_metadata[MARKER_KEY]["hit"] is False for g in result.generations[0])  # type: ignore[attr-defined]
    assert aggregate(chunks).content == model.invoke(QUESTION).content == "Answer 1."
    assert chunks[-1].response_metadata[MARKER_KEY]["hit"] is True
    assert len(bare.calls) == 1


def test_a_model_that_cannot_stream_streams_its_cached_answer_in_one_chunk(llm_cache: LLMCache) -> None:
    bare = TwoAnswersChatModel()
    model = cached(bare, cache=llm_cache)
    first, second = list(model.stream(QUESTION)), list(model.stream(QUESTION))

    assert len(first) == len(second) == 1  # as the bare model's stream() does
    assert first[0].response_metadata[MARKER_KEY]["hit"] is False
    assert second[0].response_metadata[MARKER_KEY]["hit"] is True
    assert len(bare.calls) == 1


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    degrees: int
