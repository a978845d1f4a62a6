"""A miss's duration is its own: overlapping misses, same prompt or not, in threads or tasks.

Each stored entry carries how long the model call after its miss took, and every hit of
it adds that to ``ms_saved``. Calls are ordered with events (no race with the cache): the
first call is in its model when the second misses, and the second writes last.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from langchain_core.language_models import LLM, BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.load import dumps
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from pydantic import Field, PrivateAttr

from llmcache_django import cached
from llmcache_django.core import codec
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import entry_digest

#: The simulated latency of each model call (inside the model, not a wait of the test).
LATENCY = 0.2
#: How long a call waits for the other one at most (a deadline, met at once when all is well).
DEADLINE = 30.0


class PacedLLM(LLM):
    """A text model that calls ``gate(call_number)`` on entry, then takes :data:`LATENCY` seconds
    to answer; ``spans`` records when each call entered and left the model."""

    gate: Callable[[int], None] = lambda number: None
    agate: Callable[[int], Awaitable[None]] | None = None
    spans: dict[int, tuple[float, float]] = Field(default_factory=dict)
    _calls: itertools.count[int] = PrivateAttr(default_factory=lambda: itertools.count(1))

    @property
    def _llm_type(self) -> str:
        return "paced-fake"

    def _call(self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any) -> str:
        number, entered = next(self._calls), time.monotonic()
        self.gate(number)
        time.sleep(LATENCY)
        self.spans[number] = (entered, time.monotonic())
        return f"answer to {prompt}"

    async def _acall(self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any) -> str:
        number, entered = next(self._calls), time.monotonic()
        assert self.agate is not None
        await self.agate(number)
        await asyncio.sleep(LATENCY)
        self.spans[number] = (entered, time.monotonic())
        return f"answer to {prompt}"


def stored_duration(cache: LLMCache, model: PacedLLM, prompt: str) -> float | None:
    """The duration in the entry stored for ``prompt`` (the llm_string as ``generate()`` derives it)."""
    llm_string = str(sorted({**model._dict_for_compat(), "stop": None}.items()))
    value = cache.store.get(entry_digest(prompt, llm_string))
    assert value is not None, f"no entry for {prompt!r}"
    return codec.decode(value).duration


#: Builds the model under test from its two gates (sync and async).
ModelMaker = Callable[[Callable[[int], None], Callable[[int], Awaitable[None]] | None], Any]


def overlapping_calls_in_threads(make_model: ModelMaker, prompts: tuple[str, str], *, stream: bool = False) -> Any:
    """Two calls: the second misses while the first is in its model, and writes after it."""
    first_in_model, second_in_model, first_done = threading.Event(), threading.Event(), threading.Event()

    def gate(number: int) -> None:
        if number == 1:
            first_in_model.set()
            assert second_in_model.wait(DEADLINE)
        else:
            second_in_model.set()
            assert first_done.wait(DEADLINE)

    model = make_model(gate, None)

    def call(prompt: str) -> None:
        if stream:
            list(model.stream(prompt))
        else:
            model.invoke(prompt)

    def first() -> None:
        call(prompts[0])
        first_done.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in_model.wait(DEADLINE)
    call(prompts[1])
    thread.join(DEADLINE)
    return model


def overlapping_calls_in_tasks(make_model: ModelMaker, prompts: tuple[str, str], *, stream: bool = False) -> Any:
    """:func:`overlapping_calls_in_threads` with two asyncio tasks on one event loop."""

    async def run() -> Any:
        first_in_model, second_in_model, first_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def agate(number: int) -> None:
            if number == 1:
                first_in_model.set()
                await asyncio.wait_for(second_in_model.wait(), DEADLINE)
            else:
                second_in_model.set()
                await asyncio.wait_for(first_done.wait(), DEADLINE)

        model = make_model(lambda number: None, agate)

        async def call(prompt: str) -> None:
            if stream:
                [chunk async for chunk in model.astream(prompt)]
            else:
                await model.ainvoke(prompt)

        async def first() -> None:
            await call(prompts[0])
            first_done.set()

        task = asyncio.create_task(first())
        await asyncio.wait_for(first_in_model.wait(), DEADLINE)
        await call(prompts[1])
        await task
        return model

    return asyncio.run(run())


RUNNERS: dict[str, Callable[..., Any]] = {
    "threads": overlapping_calls_in_threads,
    "tasks": overlapping_calls_in_tasks,
}


def text_model(cache: LLMCache) -> ModelMaker:
    return lambda gate, agate: PacedLLM(cache=cache, gate=gate, agate=agate)


def test_the_last_of_two_overlapping_misses_of_one_prompt_stores_its_own_duration(llm_cache: LLMCache) -> None:
    """Single-flight off, both calls miss "q": the entry left is the second's, with its duration."""
    for runner_name, run in RUNNERS.items():
        llm_cache.clear()
        model = run(text_model(llm_cache), ("q", "q"))
        second_span = model.spans[2]
        duration = stored_duration(llm_cache, model, "q")
        assert duration is not None, f"{runner_name}: the entry left has no duration: its hits save nothing"
        assert duration >= second_span[1] - second_span[0] >= LATENCY, runner_name


def test_overlapping_misses_of_two_prompts_each_store_their_own_duration(llm_cache: LLMCache) -> None:
    for runner_name, run in RUNNERS.items():
        llm_cache.clear()
        model = run(text_model(llm_cache), ("first", "second"))
        for prompt, (entered, left) in zip(("first", "second"), (model.spans[1], model.spans[2]), strict=True):
            duration = stored_duration(llm_cache, model, prompt)
            assert duration is not None and duration >= left - entered, (runner_name, prompt)


def test_hits_of_an_entry_written_by_overlapping_misses_add_its_duration_to_the_time_saved(
    llm_cache: LLMCache,
) -> None:
    assert llm_cache.stats is not None
    model = overlapping_calls_in_threads(text_model(llm_cache), ("q", "q"))
    duration = stored_duration(llm_cache, model, "q")
    llm_cache.stats.reset()
    for _ in range(3):
        model.invoke("q")
    assert duration is not None
    assert llm_cache.stats.ms_saved == 3 * round(duration * 1000) >= 3 * LATENCY * 1000


class PacedChatModel(BaseChatModel):
    """A chat model that streams its answer in two chunks after ``gate``/``agate`` and
    :data:`LATENCY` seconds; ``spans`` as :class:`PacedLLM`'s."""

    gate: Callable[[int], None] = lambda number: None
    agate: Callable[[int], Awaitable[None]] | None = None
    spans: dict[int, tuple[float, float]] = Field(default_factory=dict)
    _calls: itertools.count[int] = PrivateAttr(default_factory=lambda: itertools.count(1))

    @property
    def _llm_type(self) -> str:
        return "paced-chat-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        return generate_from_stream(self._stream(messages))

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        number, entered = next(self._calls), time.monotonic()
        self.gate(number)
        time.sleep(LATENCY)
        self.spans[number] = (entered, time.monotonic())
        yield from self._chunks()

    async def _astream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        number, entered = next(self._calls), time.monotonic()
        assert self.agate is not None
        await self.agate(number)
        await asyncio.sleep(LATENCY)
        self.spans[number] = (entered, time.monotonic())
        for chunk in self._chunks():
            yield chunk

    def _chunks(self) -> list[ChatGenerationChunk]:
        return [ChatGenerationChunk(message=AIMessageChunk(content=text)) for text in ("An ", "answer.")]


def test_overlapping_streamed_misses_of_one_question_store_the_last_writers_own_duration(llm_cache: LLMCache) -> None:
    """The ``cached(model).stream()`` path times its misses the same way."""
    for runner_name, run in RUNNERS.items():
        llm_cache.clear()
        model = run(
            lambda gate, agate: cached(PacedChatModel(gate=gate, agate=agate), cache=llm_cache), ("q", "q"), stream=True
        )
        value = llm_cache.store.get(entry_digest(dumps([HumanMessage(content="q")]), model._get_llm_string()))
        assert value is not None
        duration = codec.decode(value).duration
        entered, left = model.spans[2]
        assert duration is not None and duration >= left - entered >= LATENCY, runner_name
