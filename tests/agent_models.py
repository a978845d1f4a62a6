"""A real LangChain chat model for agent tests: it calls a tool step after step, then answers.

Like a provider model it streams: tool calls as tool-call chunks (arguments in two pieces),
text word by word, usage and a finish reason on the last chunk. It counts its calls in a
list shared with its copies (``cached()`` returns a copy).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

CITIES = ("Paris", "Lyon", "Nice", "Lille", "Brest", "Dijon", "Metz", "Tours", "Caen", "Pau", "Rouen")


@tool
def weather(city: str) -> str:
    """The weather in ``city`` today."""
    return f"{city}: sunny, {15 + len(city)} degrees"


class ToolStepsChatModel(BaseChatModel):
    """Calls the first bound tool ``tool_steps`` times (one city a step) since the last
    human message, then answers with what the tools said."""

    tool_steps: int = 2
    calls: list[int] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "tool-steps-fake"

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self.calls.append(1)
        results = tool_results(messages)
        tools = kwargs.get("tools")
        if tools and len(results) < self.tool_steps:
            chunks = tool_call_chunks(tools[0]["function"]["name"], len(results), len(messages))
        else:
            chunks = answer_chunks(results, len(messages))
        for chunk in chunks:
            yield ChatGenerationChunk(message=chunk)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(tool) for tool in tools], **kwargs)


def tool_results(messages: list[BaseMessage]) -> list[str]:
    """The tool results since the last human message."""
    results: list[str] = []
    for message in messages:
        if message.type == "human":
            results = []
        elif message.type == "tool":
            results.append(str(message.content))
    return results


def tool_call_chunks(name: str, step: int, seen: int) -> Iterator[AIMessageChunk]:
    """A tool call as a provider streams it: the name and id, then the arguments in two pieces."""
    args = json.dumps({"city": CITIES[step % len(CITIES)]})
    half = len(args) // 2
    call_id = f"call_{seen}_{step}"
    yield AIMessageChunk(
        content="", tool_call_chunks=[tool_call_chunk(name=name, args=args[:half], id=call_id, index=0)]
    )
    yield AIMessageChunk(content="", tool_call_chunks=[tool_call_chunk(args=args[half:], index=0)])
    yield last_chunk(seen, "tool_calls")


def answer_chunks(results: list[str], seen: int) -> Iterator[AIMessageChunk]:
    """The answer, word by word."""
    text = "Here is the weather. " + " ".join(f"{result}." for result in results) if results else "Hello there."
    for word in text.split(" "):
        yield AIMessageChunk(content=word + " ")
    yield last_chunk(seen, "stop")


def last_chunk(seen: int, finish_reason: str) -> AIMessageChunk:
    """The last chunk: usage and the finish reason, as providers send them."""
    return AIMessageChunk(
        content="",
        usage_metadata={"input_tokens": 10 * seen, "output_tokens": 12, "total_tokens": 10 * seen + 12},
        response_metadata={"finish_reason": finish_reason, "model_name": "fake-steps-1"},
        chunk_position="last",
    )
