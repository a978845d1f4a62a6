"""Agents and conversations through the cache: a repeated run is a hit at every step.

Real LangChain 1.x agents (``create_agent``) and LangGraph graphs over a tool-calling model
that streams as providers do, on every kind of LLM cache. A step's history holds earlier
answers; whether those were hits or live calls must not change its key.
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from llmcache_django import cached
from llmcache_django.core.cache import LLMCache
from tests.agent_models import ToolStepsChatModel, weather

QUESTION = "What is the weather in Paris and in Lyon?"


def answer_of(result: dict[str, Any]) -> AIMessage:
    """The agent's last message: its answer."""
    answer = result["messages"][-1]
    assert isinstance(answer, AIMessage)
    return answer


def provider_view(messages: list[BaseMessage]) -> list[tuple[Any, ...]]:
    """What a provider is sent of ``messages``, to compare two runs."""
    return [(m.type, m.content, getattr(m, "tool_calls", None), getattr(m, "tool_call_id", None)) for m in messages]


def test_repeated_agent_run_makes_no_model_call_through_cached_model(llm_cache: LLMCache) -> None:
    model = ToolStepsChatModel()
    calls = model.calls
    agent = create_agent(cached(model, cache=llm_cache), tools=[weather])
    first = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    assert len(calls) == 3  # tool call, tool call, answer

    second = agent.invoke({"messages": [HumanMessage(QUESTION)]})

    assert len(calls) == 3
    assert provider_view(second["messages"]) == provider_view(first["messages"])
    assert answer_of(second).response_metadata["llm_cache"]["hit"] is True


async def test_repeated_async_agent_run_makes_no_model_call_through_cached_model(llm_cache: LLMCache) -> None:
    model = ToolStepsChatModel()
    calls = model.calls
    agent = create_agent(cached(model, cache=llm_cache), tools=[weather])
    first = await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})
    second = await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})

    assert len(calls) == 3
    assert provider_view(second["messages"]) == provider_view(first["messages"])


def test_repeated_agent_run_makes_no_model_call_through_the_global_cache(global_cache: LLMCache) -> None:
    model = ToolStepsChatModel()
    calls = model.calls
    agent = create_agent(model, tools=[weather])
    first = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    second = agent.invoke({"messages": [HumanMessage(QUESTION)]})

    assert len(calls) == 3
    assert provider_view(second["messages"]) == provider_view(first["messages"])
    assert global_cache.stats is not None and global_cache.stats.hits == 3


async def test_repeated_async_agent_run_makes_no_model_call_through_the_global_cache(global_cache: LLMCache) -> None:
    model = ToolStepsChatModel()
    calls = model.calls
    agent = create_agent(model, tools=[weather])
    await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})
    await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})

    assert len(calls) == 3


def model_and_tools_graph(model: BaseChatModel) -> Any:
    """A LangGraph ``StateGraph``: a model node and a tool node, looping until an answer."""
    bound = model.bind_tools([weather])

    def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [bound.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode([weather]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile()


def test_repeated_state_graph_run_makes_no_model_call(llm_cache: LLMCache) -> None:
    model = ToolStepsChatModel()
    calls = model.calls
    graph = model_and_tools_graph(cached(model, cache=llm_cache))
    graph.invoke({"messages": [HumanMessage(QUESTION)]})
    graph.invoke({"messages": [HumanMessage(QUESTION)]})

    assert len(calls) == 3


def test_third_turn_of_a_repeated_conversation_is_a_hit(llm_cache: LLMCache) -> None:
    """Turn 3 sends turns 1-2 back; in the repeat, turn 2 was itself a hit."""
    model = cached(ToolStepsChatModel(tool_steps=0), cache=llm_cache)
    calls = model.calls

    def converse() -> list[BaseMessage]:
        history: list[BaseMessage] = []
        for turn in ("Hello!", "And again?", "One more time?"):
            history.append(HumanMessage(turn))
            history.append(model.invoke(history))
        return history

    first = converse()
    assert len(calls) == 3
    second = converse()

    assert len(calls) == 3
    assert [m.content for m in second] == [m.content for m in first]
    assert second[-1].response_metadata["llm_cache"]["hit"] is True
