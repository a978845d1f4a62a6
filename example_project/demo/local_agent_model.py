"""An offline tool-calling chat model for the agent page: it calls the weather tool for each
city it finds in the question (at most two, one a step), then answers from the results.

It streams as provider models do: a tool call as tool-call chunks, the answer word by word,
usage on the last chunk, each step taking about `latency` seconds."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr

from example_project.demo.local_model import count_tokens

CITIES = ("Paris", "London", "Berlin", "Madrid", "Rome", "Tokyo", "Lisbon", "Oslo", "Vienna", "Dublin")
MAX_TOOL_STEPS = 2


class LocalToolModel(BaseChatModel):
    """A chat model that needs no API key and calls tools: same history, same answer."""

    model_name: str = "llmcache-demo-agent"
    latency: float = 1.5
    _calls: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "llmcache-demo-agent"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}  # latency must not change the cache key

    @property
    def calls(self) -> int:
        """How many times the model itself answered (cache hits do not count)."""
        return self._calls

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(tool) for tool in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self._calls += 1
        chunks = next_step(messages, kwargs.get("tools"))
        for chunk in chunks:
            time.sleep(self.latency / len(chunks))
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self._calls += 1
        chunks = next_step(messages, kwargs.get("tools"))
        for chunk in chunks:
            await asyncio.sleep(self.latency / len(chunks))
            yield ChatGenerationChunk(message=chunk)


def next_step(messages: list[BaseMessage], tools: list[dict[str, Any]] | None) -> list[AIMessageChunk]:
    """The model's next answer as chunks: a tool call for the next city, or the final answer."""
    question = next((str(m.text) for m in reversed(messages) if m.type == "human"), "")
    results = [str(m.text) for m in messages[_last_human(messages) :] if m.type == "tool"]
    cities = cities_in(question)
    used = count_tokens(" ".join(str(m.text) for m in messages))
    if tools and len(results) < len(cities):
        name = tools[0]["function"]["name"]
        return [*_tool_call(name, cities[len(results)], f"call_{len(messages)}"), _last(used, "tool_calls")]
    words = re.findall(r"\S+\s*", final_answer(results))
    return [*(AIMessageChunk(content=word) for word in words), _last(used + len(words), "stop")]


def cities_in(question: str) -> list[str]:
    """The known cities the question names, in order (at most two); Paris if none."""
    found = sorted((question.lower().find(city.lower()), city) for city in CITIES if city.lower() in question.lower())
    return [city for _, city in found][:MAX_TOOL_STEPS] or ["Paris"]


def final_answer(results: list[str]) -> str:
    """What the model says once the tools have answered."""
    if not results:
        return "I can only tell the weather: ask me about a city."
    return "Here is what the weather tool says. " + " ".join(f"{result}." for result in results)


def _tool_call(name: str, city: str, call_id: str) -> list[AIMessageChunk]:
    args = json.dumps({"city": city})
    half = len(args) // 2
    return [
        AIMessageChunk(
            content="", tool_call_chunks=[tool_call_chunk(name=name, args=args[:half], id=call_id, index=0)]
        ),
        AIMessageChunk(content="", tool_call_chunks=[tool_call_chunk(args=args[half:], index=0)]),
    ]


def _last(input_tokens: int, finish_reason: str) -> AIMessageChunk:
    return AIMessageChunk(
        content="",
        usage_metadata={"input_tokens": input_tokens, "output_tokens": 20, "total_tokens": input_tokens + 20},
        response_metadata={"finish_reason": finish_reason, "model_name": "llmcache-demo-agent"},
        chunk_position="last",
    )


def _last_human(messages: list[BaseMessage]) -> int:
    humans = [index for index, message in enumerate(messages) if message.type == "human"]
    return humans[-1] if humans else 0
