"""Agents through the cache, on Redis: an N-step ``create_agent`` run cold and repeated
(model calls and wall time, the model taking 200 ms a call), against the same cache keyed by
the whole ``dumps()`` string as before (and langchain-community's ``RedisCache`` when the
``[bench]`` extra is installed); and what deriving the key costs for a 50-message history.

`python -m benchmarks.agents [--quick]` runs on a throw-away redis-server and prints its
section, also written to benchmarks/results/agents.md (`make bench` runs it too).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from langchain.agents import create_agent
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from benchmarks.servers import HOST
from benchmarks.timing import Plan, interleaved
from llmcache_django import RedisLLMCache, cached
from llmcache_django.core import canonical, keys

MODEL_SECONDS = 0.2
STEPS = (3, 10)
RUNS = 3
HISTORY_MESSAGES = 50
QUESTION = "What is the weather in each of the cities you know?"
RESULTS = Path(__file__).parent / "results" / "agents.md"
PLAN = Plan(rounds=200, batch=5, warmup=50)
QUICK_PLAN = Plan(rounds=5, batch=2, warmup=2)


@tool
def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"{city}: sunny, 21 degrees"


class StepsModel(BaseChatModel):
    """Calls the weather tool until ``steps - 1`` results are in, then answers; each call
    takes ``seconds`` and reports usage, as a provider's does."""

    steps: int
    seconds: float = MODEL_SECONDS
    calls: list[int] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "bench-agent-steps"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.calls.append(1)
        time.sleep(self.seconds)
        done = sum(1 for m in messages if m.type == "tool")
        usage = {"input_tokens": 40 * len(messages), "output_tokens": 20, "total_tokens": 40 * len(messages) + 20}
        if done < self.steps - 1:
            call = {"name": "weather", "args": {"city": f"City {done}"}, "id": f"call_{done}"}
            message = AIMessage(content="", tool_calls=[call], usage_metadata=usage)  # type: ignore[arg-type]
        else:
            message = AIMessage(content=f"All {done} cities are sunny.", usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)])


class DumpsKeyedCache(BaseCache):
    """Our cache keyed as before this change (and as every LangChain cache is): by the whole
    ``dumps(messages)`` string. The prompt is prefixed so it is not read as messages."""

    def __init__(self, cache: RedisLLMCache) -> None:
        self.cache = cache

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self.cache.lookup("\x00" + prompt, llm_string)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self.cache.update("\x00" + prompt, llm_string, return_val)

    def clear(self, **kwargs: Any) -> None:
        self.cache.clear()


def upstream_cache(port: int) -> BaseCache | None:
    """langchain-community's ``RedisCache`` on its own database (the ``[bench]`` extra), if installed."""
    try:
        from langchain_community.cache import RedisCache
    except ImportError:
        return None
    upstream = RedisCache(redis.Redis(host=HOST, port=port, db=10))
    upstream.clear()  # FLUSHDB of its own database
    return upstream


@dataclass(frozen=True)
class AgentRuns:
    """Model calls and wall seconds of consecutive runs of one N-step agent on one cache."""

    cache: str
    steps: int
    calls: list[int]
    seconds: list[float]


@dataclass(frozen=True)
class KeyCosts:
    """Microseconds per lookup of a 50-message history: deriving its key and the whole hit."""

    prompt_bytes: int
    #: Before this change: the digest of the whole ``dumps()`` string.
    digest_only_us: float
    #: Canonical form + digest of a history this process has seen none of (another worker served it).
    new_history_us: float
    #: ... of a history whose messages but the last two this process has seen (the next agent step or chat turn).
    next_step_us: float
    lc_dumps_us: float
    #: A whole ``lookup`` hit of the history: its messages seen before, and none of them.
    seen_hit_us: float
    new_hit_us: float


def agent_runs(name: str, cache: BaseCache, steps: int, wrap: bool) -> AgentRuns:
    """Run an N-step agent :data:`RUNS` times on the same question; calls and time of each."""
    model = StepsModel(steps=steps)
    agent = create_agent(
        cached(model, cache=cache) if wrap else model.model_copy(update={"cache": cache}), tools=[weather]
    )
    calls, seconds = [], []
    for _ in range(RUNS):
        before, started = len(model.calls), time.perf_counter()
        agent.invoke({"messages": [HumanMessage(QUESTION)]})
        seconds.append(time.perf_counter() - started)
        calls.append(len(model.calls) - before)
    return AgentRuns(name, steps, calls, seconds)


def history() -> list[BaseMessage]:
    """A 50-message agent conversation whose earlier answers were cache hits."""
    hit = {"llm_cache": {"hit": True, "alias": "default", "age_s": 3.2}, "finish_reason": "tool_calls"}
    usage = {"input_tokens": 900, "output_tokens": 20, "total_tokens": 920, "total_cost": 0}
    messages: list[BaseMessage] = [SystemMessage("You are a weather assistant. Use the tool; answer briefly.")]
    for turn in range((HISTORY_MESSAGES - 1) // 4 + 1):
        call = {"name": "weather", "args": {"city": f"City {turn}"}, "id": f"call_{turn}"}
        messages += [
            HumanMessage(f"What is the weather in City {turn}, and do I need an umbrella today?"),
            AIMessage("", tool_calls=[call], usage_metadata=usage, response_metadata=hit, id=f"lc_run--{turn}-0"),  # type: ignore[arg-type]
            ToolMessage(f"City {turn}: sunny, 21 degrees, light wind from the west.", tool_call_id=f"call_{turn}"),
            AIMessage(
                f"Sunny and 21 degrees in City {turn}: no umbrella needed.",
                usage_metadata=usage,
                id=f"lc_run--{turn}-1",
            ),  # type: ignore[arg-type]
        ]
    return messages[:HISTORY_MESSAGES]


def key_costs(cache: RedisLLMCache, plan: Plan) -> KeyCosts:
    """Key derivation for a 50-message history (the digest alone, as before; canonical form
    + digest, new and one step on), langchain-core's own ``dumps()`` of it, a lookup hit."""
    messages = history()
    prompt, llm_string = dumps(messages), "bench-llm---[('stop', None)]"
    cache.update(prompt, llm_string, [ChatGeneration(message=AIMessage("Sunny."))])

    def new_history() -> None:
        canonical._memo.clear()
        keys.entry_key(prompt, llm_string)

    def seen_hit() -> None:
        if cache.lookup(prompt, llm_string) is None:
            raise RuntimeError("the 50-message history was not a hit")

    def new_hit() -> None:
        canonical._memo.clear()
        seen_hit()

    calls: dict[str, Callable[[], object]] = {
        "new history": new_history,
        "digest only": lambda: keys._digest(prompt, llm_string),
        "lc dumps": lambda: dumps(messages),
        "seen hit": seen_hit,
        "new hit": new_hit,
    }
    found = interleaved(calls, plan)
    return KeyCosts(
        len(prompt.encode()),
        found["digest only"].median_us,
        found["new history"].median_us,
        next_step_us(messages, llm_string, plan.rounds * plan.batch),
        found["lc dumps"].median_us,
        found["seen hit"].median_us,
        found["new hit"].median_us,
    )


def next_step_us(messages: list[BaseMessage], llm_string: str, count: int) -> float:
    """Median µs of canonical form + digest for histories whose messages but the last two
    were seen (each timed prompt ends in two messages never seen before)."""
    canonical._memo.clear()
    canonical.canonical_prompt(dumps(messages[:-2]))
    prompts = [dumps([*messages[:-2], HumanMessage(f"Turn {n}?"), AIMessage(f"Answer {n}.")]) for n in range(count)]
    samples = []
    for prompt in prompts:
        started = time.perf_counter_ns()
        keys.entry_key(prompt, llm_string)
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000


def report_lines(runs: list[AgentRuns], costs: KeyCosts) -> list[str]:
    """The agents section of the results."""
    rows = [
        f"| {r.steps} | {r.cache} | {' / '.join(map(str, r.calls))} | "
        f"{' / '.join(f'{s * 1000:,.0f}' for s in r.seconds)} |"
        for r in runs
    ]
    return [
        "## Agents",
        "",
        f"`create_agent` with N steps (N - 1 tool calls, then the answer), the model taking "
        f"{MODEL_SECONDS * 1000:.0f} ms a call, the same question run {RUNS} times on Redis.",
        "",
        "| N | cache | model calls, run 1 / 2 / 3 | wall ms, run 1 / 2 / 3 |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Key derivation for a {HISTORY_MESSAGES}-message history ({costs.prompt_bytes:,} bytes of `dumps()`), "
        "medians per lookup:",
        "",
        "| key derivation | µs | share of the whole lookup hit |",
        "|---|---|---|",
        f"| before this change: digest of the `dumps()` string | {costs.digest_only_us:.0f} | "
        f"{costs.digest_only_us / costs.seen_hit_us * 100:.0f} % of {costs.seen_hit_us:.0f} µs |",
        f"| canonical form + digest, the next step of a history (all but 2 messages seen) | {costs.next_step_us:.0f} | "
        f"{costs.next_step_us / costs.seen_hit_us * 100:.0f} % of {costs.seen_hit_us:.0f} µs |",
        f"| canonical form + digest, a history this process has seen none of | {costs.new_history_us:.0f} | "
        f"{costs.new_history_us / costs.new_hit_us * 100:.0f} % of {costs.new_hit_us:.0f} µs |",
        "",
        f"A lookup hit of that history is a Redis GET of a ~{costs.prompt_bytes // 1000} KB entry (the canonical "
        "prompt is stored in it for the collision check), its decoding and the comparison. langchain-core's own "
        f"`dumps()` of the 50 messages, which every lookup of them pays before it reaches the cache: "
        f"{costs.lc_dumps_us:,.0f} µs.",
        "",
    ]


def measure(port: int, plan: Plan) -> tuple[list[AgentRuns], KeyCosts]:
    """Every agent row, then the key costs, on the Redis server at ``port``."""
    ours = RedisLLMCache(redis.Redis(host=HOST, port=port, db=9), namespace="bench-agents")
    runs = []
    for steps in STEPS:
        ours.clear()
        runs.append(agent_runs("llmcache_django, `cached(model)`", ours, steps, wrap=True))
        ours.clear()
        runs.append(agent_runs("llmcache_django, model `cache=`", ours, steps, wrap=False))
        ours.clear()
        runs.append(agent_runs("`dumps()` keys (before this change)", DumpsKeyedCache(ours), steps, wrap=False))
        upstream = upstream_cache(port)
        if upstream is not None:
            runs.append(agent_runs("langchain-community `RedisCache`", upstream, steps, wrap=False))
    return runs, key_costs(ours, plan)


def main(argv: list[str]) -> int:
    """Run this part, print its section and write it to benchmarks/results/agents.md."""
    from benchmarks import servers

    plan = QUICK_PLAN if "--quick" in argv else PLAN
    with servers.redis_server() as server:
        runs, costs = measure(server.port, plan)
    lines = report_lines(runs, costs)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
