"""Asking the demo's chat model through the LLM cache, and timing the answer."""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from example_project.demo.chat import chat_model


@dataclass(frozen=True)
class Answer:
    """One answer as the page shows it."""

    text: str
    cache_hit: bool
    seconds: float
    total_tokens: int
    #: The cache's server could not be reached: the model answered and nothing was stored.
    cache_unavailable: bool = False
    #: Asked with Regenerate: the model answered anew and its answer replaced the entry.
    refreshed: bool = False
    #: The cache scope that answered or stored the answer (`user:1`), or `None`: unscoped.
    scope: str | None = None

    @property
    def scope_label(self) -> str:
        """The scope for the page: `scope user:1`, or `unscoped`."""
        return f"scope {self.scope}" if self.scope else "unscoped"

    @property
    def milliseconds(self) -> int:
        """The answer's latency in whole milliseconds."""
        return round(self.seconds * 1000)

    @property
    def tokens_saved(self) -> int:
        """Tokens the model did not spend because the cache answered."""
        return self.total_tokens if self.cache_hit else 0


def directed(refresh: bool) -> RunnableConfig | None:
    """The config of a call: Regenerate asks the cache for a fresh answer (`"refresh"`)."""
    return {"metadata": {"llm_cache": "refresh"}} if refresh else None


def ask(prompt: str, *, refresh: bool = False) -> Answer:
    """Ask the model `prompt` in this thread; the cache is consulted first (unless `refresh`)."""
    started = perf_counter()
    message = chat_model().invoke(prompt, config=directed(refresh))
    return answer_from(message, perf_counter() - started)


async def aask(prompt: str, *, refresh: bool = False) -> Answer:
    """Ask the model `prompt` without blocking the event loop."""
    started = perf_counter()
    message = await chat_model().ainvoke(prompt, config=directed(refresh))
    return answer_from(message, perf_counter() - started)


def answer_from(message: BaseMessage, seconds: float) -> Answer:
    """The page's view of `message`: the hit marker of `cached(...)` says where it came from."""
    usage = message.usage_metadata if isinstance(message, AIMessage) else None
    marker = message.response_metadata.get("llm_cache", {})
    return Answer(
        text=str(message.text),
        cache_hit=bool(marker.get("hit")),
        seconds=seconds,
        total_tokens=usage["total_tokens"] if usage else 0,
        cache_unavailable=bool(marker.get("unavailable")),
        refreshed=bool(marker.get("refreshed")),
        scope=marker.get("scope"),
    )
