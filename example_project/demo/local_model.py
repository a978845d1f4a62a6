"""An offline chat model that answers deterministically, slowly enough to show a cache hit."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

FACTS = (
    "A cache hit costs one lookup instead of a model call, so it returns in milliseconds and spends no tokens.",
    "LangChain builds the cache key from the prompt and the model's parameters, so a change of model or "
    "temperature is a different entry.",
    "With llmcache_django the entries live in a Django cache alias, so Redis, Memcached or the database "
    "you already run can hold them.",
    "Entries expire after the TTL set in LLM_CACHES, and clearing removes only the LLM cache's own keys, "
    "never your sessions.",
    "The admin's LLM cache section shows hits, misses and writes, and can clear entries without a shell on the server.",
)
# Words too common to say what a prompt is about.
COMMON_WORDS = """a an and are as at be but by can do does for from how i in is it me my of on or should so that
the this to was what when where which who why will with you your"""
STOP_WORDS = frozenset(COMMON_WORDS.split())


class LocalChatModel(BaseChatModel):
    """A chat model that needs no API key: same prompt, same answer, after `latency` seconds."""

    model_name: str = "llmcache-demo-local"
    latency: float = 1.5
    _calls: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "llmcache-demo-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # Only what changes the answer: latency must not change the cache key.
        return {"model_name": self.model_name}

    @property
    def calls(self) -> int:
        """How many times the model itself answered (cache hits do not count)."""
        return self._calls

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._calls += 1
        time.sleep(self._seconds_for(messages))
        return self._result(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._calls += 1
        await asyncio.sleep(self._seconds_for(messages))
        return self._result(messages)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self._calls += 1
        chunks = self._chunks(messages)
        pause = self._seconds_for(messages) / len(chunks)
        for chunk in chunks:
            time.sleep(pause)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self._calls += 1
        chunks = self._chunks(messages)
        pause = self._seconds_for(messages) / len(chunks)
        for chunk in chunks:
            await asyncio.sleep(pause)
            yield chunk

    def _chunks(self, messages: list[BaseMessage]) -> list[ChatGenerationChunk]:
        """The answer word by word, usage and metadata on the last chunk, as providers stream."""
        message = self._result(messages).generations[0].message
        words = re.findall(r"\S+\s*", str(message.content))
        chunks = [AIMessageChunk(content=word) for word in words]
        chunks[-1] = AIMessageChunk(
            content=words[-1],
            usage_metadata=message.usage_metadata,  # type: ignore[attr-defined]
            response_metadata=message.response_metadata,
            chunk_position="last",
        )
        return [ChatGenerationChunk(message=chunk) for chunk in chunks]

    def _seconds_for(self, messages: list[BaseMessage]) -> float:
        # Between 0.7 and 1.3 times the mean, fixed per prompt like a real model's length.
        spread = _digest(_prompt_text(messages))[0] / 255
        return self.latency * (0.7 + 0.6 * spread)

    def _result(self, messages: list[BaseMessage]) -> ChatResult:
        prompt = _prompt_text(messages)
        text = compose_answer(prompt)
        usage = _usage(" ".join(_text(message) for message in messages), text)
        message = AIMessage(
            content=text,
            usage_metadata=usage,
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def compose_answer(prompt: str) -> str:
    """The local model's answer to `prompt`: always the same for the same prompt."""
    digest = _digest(prompt)
    terms = _key_terms(prompt) or ["your question"]
    fact = FACTS[digest[1] % len(FACTS)]
    return (
        f"You asked about {', '.join(terms)}. I am the local demo model, so I cannot look "
        "that up, but my answer is deterministic: this prompt always gets this reply, "
        f"fingerprint {digest.hex()[:12]}. That is exactly what makes it cacheable. {fact} "
        "Ask the same question again and the answer comes from the cache instead of from me."
    )


def count_tokens(text: str) -> int:
    """Roughly what a tokenizer would count: one token per four characters."""
    return max(1, round(len(text) / 4))


def _usage(prompt: str, answer: str) -> UsageMetadata:
    input_tokens, output_tokens = count_tokens(prompt), count_tokens(answer)
    return UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


def _key_terms(prompt: str) -> list[str]:
    words = re.findall(r"[A-Za-z][A-Za-z0-9'-]+", prompt.lower())
    return list(dict.fromkeys(w for w in words if w not in STOP_WORDS))[:4]


def _prompt_text(messages: list[BaseMessage]) -> str:
    return _text(messages[-1]) if messages else ""


def _text(message: BaseMessage) -> str:
    return str(message.text)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()
