"""What ``cached(model)`` returns: the same kind of model, on the chosen cache, with callbacks,
tracing events and text-completion models; and streams that survive a dead server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import FakeListChatModel, FakeStreamingListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk

from llmcache_django import cached, llm_caches
from llmcache_django.core.cache import LLMCache
from llmcache_django.integrations.replay import MARKER_KEY
from tests import servers
from tests.streaming_models import StreamingTextLLM, ToolCallingChatModel
from tests.test_streaming import QUESTION, aggregate, fake_model, lookup_weather


@pytest.fixture
def llm_cache(make_llm_cache: Callable[..., LLMCache]) -> LLMCache:
    """One kind is enough here: tests/test_streaming.py runs on every kind."""
    return make_llm_cache("redis")


class TokenRecorder(BaseCallbackHandler):
    """Records every ``on_llm_new_token`` and whether the run ended."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.ended = 0

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        self.tokens.append(token)

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.ended += 1


def test_cached_model_is_the_same_kind_of_model_and_the_original_is_unchanged(llm_cache: LLMCache) -> None:
    bare = fake_model()
    model = cached(bare, cache=llm_cache)

    assert isinstance(model, GenericFakeChatModel)
    assert type(model).__name__ == "GenericFakeChatModel"
    assert model._get_llm_string() == bare._get_llm_string()
    assert bare.cache is None
    assert cached(model, cache=llm_cache).__class__ is model.__class__  # no stacking


def test_a_bare_model_on_the_same_cache_shares_the_entries(llm_cache: LLMCache) -> None:
    bare = ToolCallingChatModel(cache=llm_cache)
    bare.invoke([HumanMessage(content=QUESTION, id="msg-1")])  # langchain-core's own _generate_with_cache
    chunks = list(cached(bare).stream([HumanMessage(content=QUESTION, id="msg-2")]))

    assert chunks[-1].response_metadata[MARKER_KEY]["hit"] is True
    assert len(bare.calls) == 1


@pytest.mark.django_db(transaction=True)
def test_default_alias_and_named_alias(settings: Any) -> None:
    settings.LLM_CACHES = {"default": {"CACHE": "db"}, "chat": {"CACHE": "default", "NAMESPACE": "chat"}}
    for alias in llm_caches:
        llm_caches[alias].clear()
    on_default, on_chat = cached(fake_model()), cached(fake_model(), alias="chat")
    list(on_default.stream(QUESTION))
    last = list(on_chat.stream(QUESTION))[-1]

    assert last.response_metadata[MARKER_KEY] == {"hit": False, "alias": "chat"}
    assert list(on_default.stream(QUESTION))[-1].response_metadata[MARKER_KEY]["alias"] == "default"


def test_the_models_own_llm_cache_is_used_and_cache_false_still_caches(llm_cache: LLMCache) -> None:
    own = cached(fake_model().model_copy(update={"cache": llm_cache}))
    off = cached(fake_model().model_copy(update={"cache": False}), cache=llm_cache)
    list(own.stream(QUESTION))

    assert list(off.stream(QUESTION))[-1].response_metadata[MARKER_KEY]["hit"] is True


def test_a_foreign_cache_on_the_model_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"InMemoryCache.*pass cache=.*or alias="):
        cached(GenericFakeChatModel(messages=iter([]), cache=InMemoryCache()))
    with pytest.raises(TypeError, match="BaseChatModel or BaseLLM"):
        cached("gpt-4o")  # type: ignore[type-var]


def test_callbacks_see_every_replayed_chunk_and_the_end_of_the_run(llm_cache: LLMCache) -> None:
    model = cached(fake_model(), cache=llm_cache)
    live, replay = TokenRecorder(), TokenRecorder()
    list(model.stream(QUESTION, config={"callbacks": [live]}))
    chunks = list(model.stream(QUESTION, config={"callbacks": [replay]}))

    assert "".join(replay.tokens) == "".join(live.tokens)
    assert len(replay.tokens) == len(chunks)
    assert replay.ended == live.ended == 1


async def test_astream_events_of_a_hit_stream_like_a_live_answer(llm_cache: LLMCache) -> None:
    model = cached(fake_model(), cache=llm_cache)
    [chunk async for chunk in model.astream(QUESTION)]
    events = [event async for event in model.astream_events(QUESTION, version="v2")]
    streamed = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    ends = [e for e in events if e["event"] == "on_chat_model_end"]

    assert len(streamed) > 1
    assert streamed[-1].response_metadata[MARKER_KEY]["hit"] is True
    assert len(ends) == 1


def test_batch_and_with_config_go_through_the_cache(llm_cache: LLMCache) -> None:
    bare = FakeListChatModel(responses=["one", "two", "three"])
    model = cached(bare, cache=llm_cache)
    first = model.batch(["a", "b"])
    again = model.with_config(run_name="again").batch(["a", "b"])
    streamed = aggregate(model.with_config(tags=["x"]).stream("a"))

    assert [m.content for m in again] == [m.content for m in first]
    assert all(m.response_metadata[MARKER_KEY]["hit"] for m in again)
    assert streamed.content == first[0].content


def test_a_text_completion_model_replays_its_stream(llm_cache: LLMCache) -> None:
    bare = StreamingTextLLM()
    model = cached(bare, cache=llm_cache)
    live, replayed = list(model.stream("Say it")), list(model.stream("Say it"))

    assert "".join(replayed) == "".join(live) == bare.text + " "
    assert len(replayed) < len(live)
    assert model.invoke("Say it") == bare.text + " "
    assert len(bare.calls) == 1


async def test_a_text_completion_model_replays_its_astream(llm_cache: LLMCache) -> None:
    bare = StreamingTextLLM()
    model = cached(bare, cache=llm_cache)
    live = [piece async for piece in model.astream("Say it")]
    replayed = [piece async for piece in model.astream("Say it")]

    assert "".join(replayed) == "".join(live)
    assert await model.ainvoke("Say it") == "".join(live)
    assert len(bare.calls) == 1


def test_fake_streaming_list_llm_streams_its_cached_answer(llm_cache: LLMCache) -> None:
    model = cached(FakeStreamingListLLM(responses=["first answer", "second answer"]), cache=llm_cache)

    assert "".join(model.stream("q")) == "first answer"
    assert "".join(model.stream("q")) == "first answer"  # the model would now say "second answer"


@pytest.fixture
def own_server(request: pytest.FixtureRequest) -> Iterator[Callable[[str], servers.Server]]:
    """Start a server this test may kill: ``own_server("redis")`` or ``("memcached")``."""
    started: list[servers.Server] = []

    def start(kind: str) -> servers.Server:
        server = servers.start_redis() if kind == "redis" else servers.start_memcached()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def cache_on(server: servers.Server) -> LLMCache:
    import redis
    from pymemcache.client.base import PooledClient

    from llmcache_django import MemcachedLLMCache, RedisLLMCache

    if server.name == "redis-server":
        return RedisLLMCache(redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1))
    return MemcachedLLMCache(PooledClient(("127.0.0.1", server.port), timeout=1, connect_timeout=1))


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_a_server_dying_during_a_stream_does_not_break_it(kind: str, own_server: Any) -> None:
    server = own_server(kind)
    model = cached(ToolCallingChatModel(text="one two three four five"), cache=cache_on(server))
    chunks = []
    for chunk in model.stream(QUESTION):
        chunks.append(chunk)
        if len(chunks) == 2:
            server.stop()

    assert aggregate(chunks).content == "one two three four five "
    assert chunks[-1].response_metadata[MARKER_KEY]["hit"] is False
    assert list(model.stream(QUESTION))[-1].response_metadata[MARKER_KEY]["hit"] is False


@pytest.mark.parametrize("kind", ["redis", "memcached"])
async def test_a_dead_server_does_not_break_an_astream(kind: str, own_server: Any) -> None:
    server = own_server(kind)
    cache = cache_on(server)
    server.stop()
    model = cached(ToolCallingChatModel(text="still here"), cache=cache)
    chunks = [chunk async for chunk in model.astream(QUESTION)]

    assert aggregate(chunks).content == "still here "
    assert cache.stats is not None and cache.stats.snapshot()["errors"] >= 1


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_the_miss_marker_says_the_cache_was_unavailable_while_the_server_is_down(kind: str, own_server: Any) -> None:
    server = own_server(kind)
    cache = cache_on(server)
    model = cached(ToolCallingChatModel(text="answered live"), cache=cache)
    assert list(model.stream(QUESTION))[-1].response_metadata[MARKER_KEY] == {"hit": False, "alias": None}
    server.kill()
    streamed = list(model.stream("another question"))[-1].response_metadata[MARKER_KEY]
    invoked = model.invoke("a third question").response_metadata[MARKER_KEY]
    assert streamed == invoked == {"hit": False, "alias": None, "unavailable": True}


def test_replayed_chunks_are_langchain_chunks() -> None:
    from llmcache_django.integrations.replay import message_chunks, text_chunks

    message = AIMessage(content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], id="m")
    chunks = list(message_chunks(message))

    assert all(isinstance(chunk, ChatGenerationChunk) for chunk in chunks)
    assert aggregate(chunk.message for chunk in chunks).content == message.content  # type: ignore[misc]
    assert [chunk.text for chunk in text_chunks(GenerationChunk(text=""))] == [""]


def test_recording_adds_chunks_up_exactly_as_langchain_does() -> None:
    from llmcache_django.integrations.replay import aggregate

    tools = [{"type": "function", "function": {"name": "lookup_weather", "parameters": {}}}]
    chunks = list(ToolCallingChatModel()._chunks(tools))
    chunks = [AIMessageChunk(content="Hi ", id="a"), *chunks, AIMessageChunk(content="!", id="a")]
    for chunk in chunks:
        chunk.id = chunk.id or "a"
    mixed = [
        *chunks[:2],
        AIMessageChunk(content="x", id="other"),
        AIMessageChunk(content=[{"type": "text", "text": "y"}], id="a"),
        *chunks[2:],
    ]

    for stream in (chunks, mixed):
        assert aggregate(stream) == stream[0] + stream[1:]


def run_agent(model: Any, question: str) -> list[Any]:
    """A minimal LangGraph-style agent loop: stream, run the tool it calls, stream again."""
    from langchain_core.messages import ToolMessage

    conversation: list[Any] = [HumanMessage(content=question)]
    while True:
        answer = aggregate(model.stream(conversation))
        conversation.append(answer)
        if not answer.tool_calls:
            return conversation
        for call in answer.tool_calls:
            conversation.append(ToolMessage(content=lookup_weather(**call["args"]), tool_call_id=call["id"]))


def test_an_agent_loop_runs_from_the_cache_the_second_time(llm_cache: LLMCache) -> None:
    bare = ToolCallingChatModel()
    agent_model = cached(bare, cache=llm_cache).bind_tools([lookup_weather])
    first = run_agent(agent_model, QUESTION)
    second = run_agent(agent_model, QUESTION)

    assert [m.type for m in first] == ["human", "ai", "tool", "ai"]
    assert [m.content for m in second] == [m.content for m in first]
    assert [m.response_metadata[MARKER_KEY]["hit"] for m in second if m.type == "ai"] == [True, True]
    assert len(bare.calls) == 2  # both model turns of the first run only


def test_stats_signals_and_listing_see_entries_recorded_from_streams(llm_cache: LLMCache) -> None:
    from llmcache_django.signals import llm_cache_hit

    hits: list[str] = []

    def on_hit(sender: Any, *, prompt: str, **kwargs: Any) -> None:
        hits.append(prompt)

    llm_cache_hit.connect(on_hit)
    try:
        model = cached(ToolCallingChatModel(), cache=llm_cache)
        list(model.stream(QUESTION))
        list(model.stream(QUESTION))
    finally:
        llm_cache_hit.disconnect(on_hit)
    assert llm_cache.stats is not None
    snapshot = llm_cache.stats.snapshot()

    assert (snapshot["hits"], snapshot["misses"], snapshot["writes"]) == (1, 1, 1)
    assert snapshot["tokens_saved"] == 18
    assert len(hits) == 1 and QUESTION in hits[0]
    assert [info.prompt for info in llm_cache.entries()] == hits
    assert llm_cache.delete_entries(model="tool-calling-fake") == 1
    assert list(model.stream(QUESTION))[-1].response_metadata[MARKER_KEY]["hit"] is False
