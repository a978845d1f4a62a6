"""A hit reaches streaming readers in pieces on every path they stream from: LangGraph's
``stream_mode="messages"``, ``astream_events`` v2 and any ``on_llm_new_token`` handler on
``invoke``, for a ``cached(...)`` model, as a live answer does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from uuid import UUID

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.tracers._streaming import _V2StreamingCallbackHandler
from pydantic import BaseModel

from llmcache_django import cached
from llmcache_django.core.cache import LLMCache
from llmcache_django.integrations.replay import MARKER_KEY
from tests.agent_models import ToolStepsChatModel, weather

QUESTION = "What is the weather in Paris and in Lyon?"


def agent_for(llm_cache: LLMCache) -> tuple[Any, list[int]]:
    """A ``create_agent`` agent over a cached tool-calling model, and its model's call list."""
    model = ToolStepsChatModel()
    return create_agent(cached(model, cache=llm_cache), tools=[weather]), model.calls


def steps(chunks: Iterable[AIMessageChunk]) -> list[list[AIMessageChunk]]:
    """The model's streamed chunks grouped into its answers, one list per step."""
    answers: dict[str | None, list[AIMessageChunk]] = {}
    for chunk in chunks:
        answers.setdefault(chunk.id, []).append(chunk)
    return list(answers.values())


def joined(chunks: list[AIMessageChunk]) -> AIMessage:
    total = chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0]
    return message_chunk_to_message(total)  # type: ignore[return-value]


def model_chunks(stream: Iterable[tuple[BaseMessage, dict[str, Any]]]) -> list[AIMessageChunk]:
    """The model's chunks among what ``stream_mode="messages"`` yields (tool results left out)."""
    return [message for message, meta in stream if meta["langgraph_node"] == "model"]  # type: ignore[misc]


def assert_replayed_in_pieces(live: list[AIMessageChunk], replayed: list[AIMessageChunk]) -> None:
    live_steps, replayed_steps = steps(live), steps(replayed)
    assert len(replayed_steps) == len(live_steps) == 3
    assert all(isinstance(chunk, AIMessageChunk) for chunk in replayed)
    for live_step, replayed_step in zip(live_steps, replayed_steps, strict=True):
        assert joined(replayed_step).content == joined(live_step).content
        assert joined(replayed_step).tool_calls == joined(live_step).tool_calls
        assert joined(replayed_step).usage_metadata is not None
    answer = replayed_steps[-1]
    assert len([chunk for chunk in answer if chunk.content]) > 1  # the answer in pieces, not one message
    assert answer[-1].usage_metadata is not None  # usage on the last chunk
    assert replayed_steps[0][-1].tool_call_chunks  # the tool call as tool-call chunks
    assert joined(answer).response_metadata[MARKER_KEY]["hit"] is True


def test_repeated_agent_streams_its_steps_in_pieces(llm_cache: LLMCache) -> None:
    agent, calls = agent_for(llm_cache)
    request = {"messages": [HumanMessage(QUESTION)]}
    live = model_chunks(agent.stream(request, stream_mode="messages"))
    replayed = model_chunks(agent.stream(request, stream_mode="messages"))

    assert len(calls) == 3
    assert_replayed_in_pieces(live, replayed)


async def test_repeated_async_agent_streams_its_steps_in_pieces(llm_cache: LLMCache) -> None:
    agent, calls = agent_for(llm_cache)
    request = {"messages": [HumanMessage(QUESTION)]}
    live = model_chunks([item async for item in agent.astream(request, stream_mode="messages")])
    replayed = model_chunks([item async for item in agent.astream(request, stream_mode="messages")])

    assert len(calls) == 3
    assert_replayed_in_pieces(live, replayed)


async def test_repeated_agent_replays_in_pieces_through_astream_events_v2(llm_cache: LLMCache) -> None:
    agent, calls = agent_for(llm_cache)
    request = {"messages": [HumanMessage(QUESTION)]}

    async def streamed() -> list[AIMessageChunk]:
        events = agent.astream_events(request, version="v2")
        return [event["data"]["chunk"] async for event in events if event["event"] == "on_chat_model_stream"]

    live = await streamed()
    replayed = await streamed()

    assert len(calls) == 3
    assert_replayed_in_pieces(live, replayed)


class TokenCollector(BaseCallbackHandler):
    """A streaming reader of ``invoke``: collects the chunks ``on_llm_new_token`` is given.

    Its ``tap_output_*`` methods make it a streaming handler to langchain-core (the protocol
    LangGraph's and ``astream_events``' handlers follow), so ``invoke`` streams to it."""

    def __init__(self) -> None:
        self.chunks: list[AIMessageChunk] = []

    def tap_output_iter(self, run_id: UUID, output: Iterator[Any]) -> Iterator[Any]:
        return output

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[Any]) -> AsyncIterator[Any]:
        return output

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        self.chunks.append(chunk.message)


def test_invoke_with_a_token_handler_replays_a_hit_in_pieces(llm_cache: LLMCache) -> None:
    model = cached(ToolStepsChatModel(tool_steps=0), cache=llm_cache)
    handlers = [TokenCollector(), TokenCollector()]
    live = model.invoke(QUESTION, config={"callbacks": [handlers[0]]})
    hit = model.invoke(QUESTION, config={"callbacks": [handlers[1]]})

    assert len(model.calls) == 1
    assert hit.content == live.content and hit.response_metadata[MARKER_KEY]["hit"] is True
    assert len(handlers[1].chunks) > 1
    assert joined(handlers[1].chunks).content == live.content
    assert {chunk.id for chunk in handlers[1].chunks} == {hit.id}


async def test_ainvoke_with_a_token_handler_replays_a_hit_in_pieces(llm_cache: LLMCache) -> None:
    model = cached(ToolStepsChatModel(tool_steps=0), cache=llm_cache)
    handler = TokenCollector()
    live = await model.ainvoke(QUESTION)
    hit = await model.ainvoke(QUESTION, config={"callbacks": [handler]})

    assert len(model.calls) == 1
    assert hit.usage_metadata is not None and hit.usage_metadata.get("total_cost") == 0  # as langchain-core marks a hit
    assert len(handler.chunks) > 1
    assert joined(handler.chunks).content == live.content


def test_a_miss_streamed_to_a_handler_is_looked_up_once(llm_cache: LLMCache) -> None:
    model = cached(ToolStepsChatModel(tool_steps=0), cache=llm_cache)
    handler = TokenCollector()
    model.invoke(QUESTION, config={"callbacks": [handler]})

    assert llm_cache.stats is not None
    assert (llm_cache.stats.misses, llm_cache.stats.writes) == (1, 1)
    assert len(handler.chunks) > 1  # the live answer streamed to the handler as before


class Forecast(BaseModel):
    """A city's forecast."""

    city: str


def test_structured_output_through_tool_calling_replays_to_the_same_object(llm_cache: LLMCache) -> None:
    """langchain#29003: a structured answer read back from a cache must parse the same."""
    model = ToolStepsChatModel(tool_steps=1)
    structured = cached(model, cache=llm_cache).with_structured_output(Forecast, method="function_calling")
    live = structured.invoke("Forecast for Paris?")
    replayed = structured.invoke("Forecast for Paris?")
    streamed = list(structured.stream("Forecast for Paris?"))

    assert len(model.calls) == 1
    assert isinstance(live, Forecast) and replayed == live
    assert streamed[-1] == live


class EventCollector(TokenCollector, _V2StreamingCallbackHandler):
    """A reader of langchain-core's newer event protocol (``on_stream_event``)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []

    def on_stream_event(self, event: Any, **kwargs: Any) -> None:
        self.events.append(event)


def test_a_hit_reaches_event_protocol_readers_once_through_langchain_core(llm_cache: LLMCache) -> None:
    model = cached(ToolStepsChatModel(tool_steps=0), cache=llm_cache)
    readers = [EventCollector(), EventCollector()]
    model.invoke(QUESTION, config={"callbacks": [readers[0]]})
    hit = model.invoke(QUESTION, config={"callbacks": [readers[1]]})

    assert len(model.calls) == 1 and hit.response_metadata[MARKER_KEY]["hit"] is True
    assert readers[1].events  # langchain-core replays the hit as protocol events
    assert readers[1].chunks == []  # and it is not also replayed as tokens
