"""Real LangChain models that stream, for the streaming tests: a tool-calling chat model
that streams tool-call chunks and usage, a text-completion model with its own ``_stream``,
and a chat model that cannot stream. Each counts its model calls in a list shared with
its copies (``cached()`` returns a copy)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM, LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, GenerationChunk, LLMResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field


class ModelFailedError(RuntimeError):
    """The model's stream broke off."""


class ToolCallingChatModel(BaseChatModel):
    """Answers ``text`` in word chunks, then calls the first bound tool with ``tool_args``
    in two argument chunks (unless the last message is a tool result); usage and a finish
    reason come on the last chunk."""

    text: str = "Let me look that up for you."
    tool_args: dict[str, Any] = Field(default_factory=lambda: {"city": "Paris", "degrees": 21})
    fail_after: int | None = None  # raise after this many chunks
    calls: list[int] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "tool-calling-fake"

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self.calls.append(1)
        answered = bool(messages) and messages[-1].type == "tool"  # a tool result came back: answer it
        for number, chunk in enumerate(self._chunks(None if answered else kwargs.get("tools"))):
            if self.fail_after is not None and number >= self.fail_after:
                raise ModelFailedError(f"stream broke off after {number} chunks")
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

    def _chunks(self, tools: list[dict[str, Any]] | None) -> Iterator[AIMessageChunk]:
        for word in self.text.split(" "):
            yield AIMessageChunk(content=word + " ")
        if tools:
            name, args = tools[0]["function"]["name"], json.dumps(self.tool_args)
            half = len(args) // 2
            yield AIMessageChunk(
                content="", tool_call_chunks=[tool_call_chunk(name=name, args=args[:half], id="call_1", index=0)]
            )
            yield AIMessageChunk(content="", tool_call_chunks=[tool_call_chunk(args=args[half:], index=0)])
        yield AIMessageChunk(
            content="",
            usage_metadata={"input_tokens": 7, "output_tokens": 11, "total_tokens": 18},
            response_metadata={"finish_reason": "tool_calls" if tools else "stop", "model_name": "fake-tools-1"},
            chunk_position="last",
        )


class TwoAnswersChatModel(BaseChatModel):
    """Cannot stream; every call returns two generations (like ``n=2``)."""

    calls: list[int] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "two-answers-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(1)
        answers = [AIMessage(content=f"Answer {n}.", response_metadata={"index": n}) for n in (1, 2)]
        return ChatResult(generations=[ChatGeneration(message=answer) for answer in answers])


class StreamingTextLLM(BaseLLM):
    """A text-completion model with its own ``_stream``: ``text`` word by word."""

    text: str = "The quick brown fox jumps over the lazy dog."
    calls: list[int] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "streaming-text-fake"

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        self.calls.append(1)
        return LLMResult(generations=[[GenerationChunk(text=self.text)] for _ in prompts])

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        self.calls.append(1)
        for word in self.text.split(" "):
            yield GenerationChunk(text=word + " ")

    async def _astream(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[GenerationChunk]:
        for chunk in self._stream(prompt, stop, None, **kwargs):
            yield chunk
