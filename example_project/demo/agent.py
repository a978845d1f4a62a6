"""The agent page's agent: LangChain's `create_agent` over the local tool-calling model,
through the LLM cache, streamed to the page step by step as Server-Sent Events."""

from __future__ import annotations

import functools
import zlib
from collections.abc import AsyncIterator
from time import perf_counter
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from example_project.demo.chat import LATENCY
from example_project.demo.local_agent_model import LocalToolModel
from example_project.demo.streams import event
from llmcache_django import cached

#: Each agent step (a model call) takes about this share of LLMCACHE_DEMO_LATENCY.
STEP_LATENCY_SHARE = 0.5


@tool
def weather(city: str) -> str:
    """Today's weather in a city."""
    kinds = ("sunny", "cloudy", "light rain", "windy", "clear skies")
    seed = zlib.crc32(city.lower().encode())
    return f"{city}: {kinds[seed % len(kinds)]}, {8 + seed % 20} °C"


@functools.cache
def agent_model() -> LocalToolModel:
    """The agent's model, not wrapped (its `calls` count the model's own answers)."""
    return LocalToolModel(latency=STEP_LATENCY_SHARE * getattr(settings, "LLMCACHE_DEMO_LATENCY", LATENCY))


@functools.cache
def demo_agent() -> Any:
    """The agent: its model wrapped in `cached(...)`, so steps stream from the cache too."""
    return create_agent(cached(agent_model()), tools=[weather])


async def agent_events(question: str) -> AsyncIterator[str]:
    """Run the agent on `question`, streamed: `token` events as the model's text arrives, a
    `step` event as each step completes, then `done` with how many steps were replayed."""
    started, steps, replayed, chunks = perf_counter(), 0, 0, 0
    request = {"messages": [HumanMessage(question)]}
    async for mode, data in demo_agent().astream(request, stream_mode=["messages", "updates"]):
        if mode == "messages":
            chunk, _ = data
            if isinstance(chunk, AIMessage):  # a chunk, or a whole message where a step did not stream
                chunks += 1
                if chunk.text:
                    yield event("token", {"id": chunk.id, "text": chunk.text})
            continue
        for message in _step_messages(data):
            if isinstance(message, AIMessage):
                steps += 1
                replayed += _is_hit(message)
            yield event("step", step_data(message))
    seconds = perf_counter() - started
    done = {"steps": steps, "replayed": replayed, "model_calls": steps - replayed, "chunks": chunks}
    yield event("done", {**done, "milliseconds": round(seconds * 1000)})


def step_data(message: BaseMessage) -> dict[str, Any]:
    """What the page shows of one step: a model answer (tool calls or text) or a tool result."""
    if isinstance(message, ToolMessage):
        return {"kind": "tool", "name": message.name, "text": str(message.text)}
    calls = [{"name": call["name"], "args": call["args"]} for call in getattr(message, "tool_calls", [])]
    return {"kind": "model", "id": message.id, "text": str(message.text), "tool_calls": calls, "hit": _is_hit(message)}


def _step_messages(update: dict[str, Any]) -> list[BaseMessage]:
    return [message for node in update.values() if node for message in node.get("messages", [])]


def _is_hit(message: BaseMessage) -> bool:
    return bool(message.response_metadata.get("llm_cache", {}).get("hit"))


@receiver(setting_changed)
def _rebuild_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("LLMCACHE_DEMO_"):
        agent_model.cache_clear()
        demo_agent.cache_clear()
