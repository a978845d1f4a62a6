"""Single-flight on Redis: a burst of identical misses, and what single-flight adds to a miss and a hit.

The burst: 100 threads, released together by a barrier, invoke one prompt on a real LangChain
chat model (a ``FakeListChatModel`` that sleeps 200 ms per call and counts its calls) cached by
langchain-community's ``RedisCache``, by ours without single-flight, and by ours with it.

The overhead: ours with ``single_flight=True`` against ours without, on a lookup hit and on a
lookup miss followed by its update, timed call by call in alternation; the round trips
a miss plus its update makes, counted on the cache's own connections (not timed); and a hit
through ``invoke`` with and without the callback handler single-flight puts on every
LangChain run. Without langchain-community installed, its row of the burst is left out.

`python -m benchmarks.single_flight` runs this part alone on a throw-away redis-server.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis
from langchain_core.caches import BaseCache
from langchain_core.language_models import FakeListChatModel

from benchmarks.fixtures import LLM_STRING, Payload, payloads
from benchmarks.servers import HOST
from benchmarks.timing import Plan, Summary, interleaved, rotation
from llmcache_django import RedisLLMCache

#: How long the fake model takes to answer, in seconds.
LATENCY = 0.2
CALLERS = 100
ANSWER = "the answer"
#: The burst's contenders, in the order the report lists them.
UPSTREAM, PLAIN, FLIGHT = "upstream RedisCache", "ours", "ours, single-flight"
WITH, WITHOUT = "with single-flight", "without"


@dataclass(frozen=True)
class FlightPlan:
    """How much to measure: bursts per contender, the hit and miss timing plans, counted misses."""

    bursts: int
    hit: Plan
    miss: Plan
    counted_misses: int
    invoke_hit: Plan


#: Hit and miss alternate on every call (batch 1): the differences measured are a few µs.
PLAN = FlightPlan(
    5,
    Plan(rounds=20000, batch=1, warmup=200),
    Plan(rounds=3000, batch=1, warmup=50),
    50,
    Plan(rounds=5000, batch=1, warmup=100),
)
QUICK_PLAN = FlightPlan(
    1, Plan(rounds=3, batch=10, warmup=5), Plan(rounds=3, batch=10, warmup=5), 5, Plan(rounds=3, batch=10, warmup=5)
)


class ModelCalls:
    """Counts the fake model's calls, thread-safely: which threads made them, when they started and returned."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.threads: set[int] = set()
        self.starts: list[float] = []
        self.returns: list[float] = []

    def started(self) -> None:
        with self.lock:
            self.count += 1
            self.threads.add(threading.get_ident())
            self.starts.append(time.perf_counter())

    def returned(self) -> None:
        with self.lock:
            self.returns.append(time.perf_counter())


class SlowChat(FakeListChatModel):
    """A chat model that takes ``LATENCY`` seconds per call and counts its calls."""

    calls: Any = None

    def _call(self, *args: Any, **kwargs: Any) -> str:
        self.calls.started()
        time.sleep(LATENCY)
        self.calls.returned()
        return ANSWER


@dataclass(frozen=True)
class Run:
    """One burst; times in seconds from the barrier's release."""

    model_calls: int
    wall: float
    latencies: list[float]
    #: Each waiter's latency minus the leader's (the first caller that called the model to return).
    beyond_leader: list[float]
    #: When each waiter had its answer, after the first model call returned.
    after_model: list[float]
    first_model_call: float
    wrong_answers: int


@dataclass(frozen=True)
class BurstResult:
    """``callers`` concurrent identical misses on one cache, over ``len(model_calls)`` bursts.

    Latencies run from the barrier's release to each caller's answer. A *waiter* is a caller
    that did not call the model; its latency beyond the leader's (negative: answered before
    the leader's own ``invoke`` returned) and its answer's lag behind the model's return are
    pooled over all bursts.
    """

    contender: str
    callers: int
    model_calls: list[int]
    wall_ms: list[float]
    caller_p50_ms: float
    caller_p99_ms: float
    #: Median over bursts of when the first model call started.
    first_model_call_ms: float
    waiters: int
    beyond_leader_p50_ms: float | None
    beyond_leader_p99_ms: float | None
    after_model_p50_ms: float | None
    after_model_p99_ms: float | None
    #: Callers whose answer was not the model's (should be 0).
    wrong_answers: int

    @property
    def median_wall_ms(self) -> float:
        return statistics.median(self.wall_ms)

    @property
    def waiters_per_burst(self) -> float:
        return self.waiters / len(self.model_calls)


@dataclass(frozen=True)
class RoundTrips:
    """What one lookup miss plus its update sends to Redis, counted on the cache's connections."""

    misses: int
    #: Writes to a socket per miss + update: one per command, one per pipeline execution.
    round_trips: float
    commands: float
    #: Commands per miss + update as the server counted them (``total_commands_processed``):
    #: equal to ``commands`` unless the cache also talked through a connection not counted here.
    server_commands: float
    #: The round trips of the last counted miss + update, in order (``+`` joins a pipeline's commands).
    sequence: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SingleFlightResults:
    """The single-flight part of a run."""

    latency_ms: float
    bursts: list[BurstResult]
    hit: dict[str, Summary]
    miss: dict[str, Summary]
    trips: dict[str, RoundTrips]
    #: A hit through ``invoke`` with single-flight's run handler on every LangChain run, and without it.
    invoke_hit: dict[str, Summary]

    def burst(self, contender: str) -> BurstResult:
        return next(b for b in self.bursts if b.contender == contender)

    @property
    def hit_overhead(self) -> float:
        """Fraction of a hit single-flight adds (negative: lost in the noise)."""
        return self.hit[WITH].median_us / self.hit[WITHOUT].median_us - 1

    @property
    def miss_overhead(self) -> float:
        """Fraction of a miss + update single-flight adds."""
        return self.miss[WITH].median_us / self.miss[WITHOUT].median_us - 1

    @property
    def handler_overhead(self) -> float:
        """Fraction of an ``invoke`` hit the run handler adds."""
        return self.invoke_hit[WITH].median_us / self.invoke_hit[WITHOUT].median_us - 1

    @property
    def extra_round_trips(self) -> float:
        """Round trips per miss + update that single-flight adds."""
        return self.trips[WITH].round_trips - self.trips[WITHOUT].round_trips


# The burst


def quantile_ms(values: list[float], percent: int) -> float:
    """The ``percent``-th percentile of seconds, in milliseconds."""
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1] * 1000


def one_burst(cache: BaseCache, callers: int) -> Run:
    """``callers`` threads invoking one new prompt at once, released by a barrier."""
    calls = ModelCalls()
    model = SlowChat(responses=["unused"], cache=cache, calls=calls)
    prompt = f"the popular prompt #{uuid.uuid4().hex}"  # a miss: nobody asked it before
    finished = [0.0] * callers
    answers = [""] * callers
    led = [False] * callers
    barrier = threading.Barrier(callers + 1)

    def ask(index: int) -> None:
        barrier.wait()
        answers[index] = str(model.invoke(prompt).content)
        finished[index] = time.perf_counter()
        led[index] = threading.get_ident() in calls.threads  # idents are unique among live threads

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(callers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    latencies = [moment - began for moment in finished]
    leaders = [latency for latency, leading in zip(latencies, led, strict=True) if leading]
    waiters = [latency for latency, leading in zip(latencies, led, strict=True) if not leading]
    leader = min(leaders, default=0.0)
    answered = min(calls.returns, default=began) - began
    return Run(
        calls.count,
        max(latencies),
        latencies,
        [latency - leader for latency in waiters],
        [latency - answered for latency in waiters],
        min(calls.starts, default=began) - began,
        sum(answer != ANSWER for answer in answers),
    )


def pooled(runs: list[Run], name: str, percent: int) -> float | None:
    """A percentile of one per-caller series pooled over every burst; ``None`` when empty."""
    values = [value for run in runs for value in getattr(run, name)]
    return quantile_ms(values, percent) if values else None


def bursts(caches: dict[str, BaseCache], plan: FlightPlan, callers: int = CALLERS) -> list[BurstResult]:
    """``plan.bursts`` bursts per contender, contenders taking turns in rotating order, after
    one unrecorded burst each: it opens the connections of each cache's pool (100 callers
    need up to 100) and writes the model's record, as a cache that has been serving does."""
    for cache in caches.values():
        one_burst(cache, callers)
    found: dict[str, list[Run]] = {name: [] for name in caches}
    for index in range(plan.bursts):
        for name in rotation(list(caches), index):
            found[name].append(one_burst(caches[name], callers))
    return [
        BurstResult(
            contender=name,
            callers=callers,
            model_calls=[run.model_calls for run in runs],
            wall_ms=[run.wall * 1000 for run in runs],
            caller_p50_ms=pooled(runs, "latencies", 50) or 0.0,
            caller_p99_ms=pooled(runs, "latencies", 99) or 0.0,
            first_model_call_ms=statistics.median(run.first_model_call for run in runs) * 1000,
            waiters=sum(len(run.beyond_leader) for run in runs),
            beyond_leader_p50_ms=pooled(runs, "beyond_leader", 50),
            beyond_leader_p99_ms=pooled(runs, "beyond_leader", 99),
            after_model_p50_ms=pooled(runs, "after_model", 50),
            after_model_p99_ms=pooled(runs, "after_model", 99),
            wrong_answers=sum(run.wrong_answers for run in runs),
        )
        for name, runs in found.items()
    ]


# Round trips


class Wire:
    """What a client's connections sent: round trips and commands, and the commands of each trip."""

    def __init__(self) -> None:
        self.trips: list[list[str]] = []
        self._pending: list[str] = []

    def reset(self) -> None:
        self.trips, self._pending = [], []

    def queue(self, commands: Iterable[tuple[Any, ...]]) -> None:
        self._pending += [command_name(args) for args in commands]

    def sent(self) -> None:
        self.trips.append(self._pending)
        self._pending = []


def command_name(args: tuple[Any, ...]) -> str:
    """``GET``, ``SET``, ``SET NX``, ...: the command and the conditions that change what it does."""
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    flags = [flag for flag in ("NX", "XX") if any(arg in (flag, flag.encode()) for arg in args[3:])]
    return " ".join([name.upper(), *flags])


def counting_client(port: int, db: int) -> tuple[redis.Redis, Wire]:
    """A redis-py client whose connections count what they send.

    One ``send_packed_command`` is one round trip: a single command is packed and sent by
    it, a pipeline packs all its commands and sends them with one call, then reads the
    replies. The client sets timeouts, so the cache uses it as it is rather than a copy.
    """
    wire = Wire()

    class CountingConnection(redis.connection.Connection):
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            wire.queue([args])
            super().send_command(*args, **kwargs)

        def pack_commands(self, commands: Any) -> Any:
            commands = list(commands)
            wire.queue(commands)
            return super().pack_commands(commands)

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            wire.sent()
            super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool(
        connection_class=CountingConnection, host=HOST, port=port, db=db, socket_timeout=2, socket_connect_timeout=2
    )
    return redis.Redis(connection_pool=pool), wire


def count_round_trips(port: int, db: int, payload: Payload, misses: int) -> dict[str, RoundTrips]:
    """Round trips and commands of ``misses`` lookup misses, each followed by its update.

    Stats are off here (their flush, at most once a second, is the same with and without).
    The server's own count of the commands it ran checks that nothing went uncounted.
    """
    admin = redis.Redis(host=HOST, port=port)

    def server_count() -> int:  # this INFO is counted by the next one
        return int(admin.info("stats")["total_commands_processed"])

    found = {}
    for name, single_flight in ((WITH, True), (WITHOUT, False)):
        client, wire = counting_client(port, db)
        cache = RedisLLMCache(
            client,
            async_client=aioredis.Redis(host=HOST, port=port, db=db),  # not derived from the counting one
            namespace=f"bench-trips-{uuid.uuid4().hex[:8]}",
            stats=False,
            single_flight=single_flight,
        )
        miss = miss_then_update(cache, payload)
        miss()  # connects, and writes the model's record once
        wire.reset()
        served = server_count()
        for _ in range(misses):
            before = len(wire.trips)
            miss()
        served = server_count() - served - 1
        commands = [command for trip in wire.trips for command in trip]
        last = [" + ".join(trip) for trip in wire.trips[before:]]
        found[name] = RoundTrips(misses, len(wire.trips) / misses, len(commands) / misses, served / misses, last)
        client.close()
    admin.close()
    return found


# Hit and miss timing


def miss_then_update(cache: RedisLLMCache, payload: Payload) -> Callable[[], None]:
    """A call that looks up a new prompt (a miss) and stores its answer, as a model call does."""
    prompts = (f"{payload.prompt} #{n}" for n in itertools.count())

    def miss() -> None:
        prompt = next(prompts)
        if cache.lookup(prompt, LLM_STRING) is not None:
            raise RuntimeError("a new prompt was a hit")
        cache.update(prompt, LLM_STRING, payload.generations)

    return miss


def overhead_caches(port: int, db: int) -> dict[str, RedisLLMCache]:
    """Ours with and without single-flight, each on its own client, in its own namespace."""
    return {
        name: RedisLLMCache(
            redis.Redis(host=HOST, port=port, db=db),
            namespace=f"bench-flight-{uuid.uuid4().hex[:8]}",
            single_flight=single_flight,
        )
        for name, single_flight in ((WITH, True), (WITHOUT, False))
    }


def time_hits(caches: dict[str, RedisLLMCache], payload: Payload, plan: Plan) -> dict[str, Summary]:
    for cache in caches.values():
        cache.update(payload.prompt, LLM_STRING, payload.generations)
    calls = {name: functools.partial(cache.lookup, payload.prompt, LLM_STRING) for name, cache in caches.items()}
    return interleaved(calls, plan)


def time_invoke_hits(cache: RedisLLMCache, plan: Plan) -> dict[str, Summary]:
    """A hit through ``FakeListChatModel.invoke``, in a context where single-flight's run handler
    is on every LangChain run (as it is once a single-flight cache exists) and in one where it is off."""
    from llmcache_django.core import model_runs

    model = FakeListChatModel(responses=[ANSWER], cache=cache)
    model.invoke("a cached question")
    without = contextvars.copy_context()
    without.run(model_runs._handler.set, None)
    calls = {
        WITH: functools.partial(contextvars.copy_context().run, model.invoke, "a cached question"),
        WITHOUT: functools.partial(without.run, model.invoke, "a cached question"),
    }
    return interleaved(calls, plan)


def time_misses(caches: dict[str, RedisLLMCache], payload: Payload, plan: Plan) -> dict[str, Summary]:
    return interleaved({name: miss_then_update(cache, payload) for name, cache in caches.items()}, plan)


def _upstream(client: redis.Redis) -> dict[str, BaseCache]:
    """langchain-community's ``RedisCache`` on ``client``; none where it is not installed (its row is left out)."""
    try:
        from langchain_community.cache import RedisCache as UpstreamRedisCache
    except ImportError:
        print("langchain-community is not installed: its row is left out", file=sys.stderr)
        return {}
    return {UPSTREAM: UpstreamRedisCache(client)}


def measure(port: int, ours_db: int, upstream_db: int, plan: FlightPlan) -> SingleFlightResults:
    """The burst on upstream, ours and ours with single-flight; then hit and miss overhead."""
    chat = next(p for p in payloads() if p.name == "chat")
    upstream_client = redis.Redis(host=HOST, port=port, db=upstream_db)
    plain = RedisLLMCache(redis.Redis(host=HOST, port=port, db=ours_db), namespace="bench-burst")
    flight = RedisLLMCache(
        redis.Redis(host=HOST, port=port, db=ours_db), namespace="bench-burst-flight", single_flight=True
    )
    found_bursts = bursts({**_upstream(upstream_client), PLAIN: plain, FLIGHT: flight}, plan)
    overhead = overhead_caches(port, ours_db)
    hits = time_hits(overhead, chat, plan.hit)
    misses = time_misses(overhead, chat, plan.miss)
    trips = count_round_trips(port, ours_db, chat, plan.counted_misses)
    invoke_hits = time_invoke_hits(overhead[WITH], plan.invoke_hit)
    for cache in (plain, flight, *overhead.values()):
        cache.flush_stats()  # now, while the server runs: at exit it would wait on redis-py's retries
        cache.store.client.close()  # type: ignore[attr-defined]
    upstream_client.close()
    return SingleFlightResults(LATENCY * 1000, found_bursts, hits, misses, trips, invoke_hits)


# Report


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def calls_cell(calls: list[int]) -> str:
    """Model calls per burst: one number when every burst made the same."""
    return f"{calls[0]}" if len(set(calls)) == 1 else f"{min(calls)} to {max(calls)}"


def burst_lines(results: SingleFlightResults) -> list[str]:
    """The burst table, and the waiters of the single-flight burst."""
    first, flight = results.bursts[0], results.burst(FLIGHT)
    rows = [
        f"| {b.contender} | {calls_cell(b.model_calls)} | {b.median_wall_ms:.0f} | {b.first_model_call_ms:.1f} | "
        f"{b.caller_p50_ms:.1f} | {b.caller_p99_ms:.1f} | {b.wrong_answers} |"
        for b in results.bursts
    ]
    return [
        f"{first.callers} threads released by one barrier invoke the same new prompt on a LangChain "
        f"`FakeListChatModel` that takes {results.latency_ms:.0f} ms per call, on Redis "
        f"({len(first.model_calls)} burst(s) per cache, taking turns, after one unrecorded burst each). "
        "Times from the release; callers' latencies pooled over the bursts. Without single-flight, fewer "
        "than 100 model calls means some callers reached their lookup only after the first answer was "
        "stored: the whole run shares one CPU, where a busy moment can hold a thread back longer than "
        "the model takes.",
        "",
        "| cache | model calls per burst | burst wall ms (median) | first model call starts ms | "
        "callers p50 ms | callers p99 ms | wrong answers |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"With single-flight, {flight.waiters_per_burst:g} waiters per burst (callers that did not call the "
        f"model): latency beyond the leader's p50 {ms(flight.beyond_leader_p50_ms)} ms, p99 "
        f"{ms(flight.beyond_leader_p99_ms)} ms (negative: answered before the leader's own `invoke` "
        f"returned); answered after the model call returned p50 {ms(flight.after_model_p50_ms)} ms, p99 "
        f"{ms(flight.after_model_p99_ms)} ms.",
    ]


def report_lines(results: SingleFlightResults) -> list[str]:
    """The single-flight section of results.md."""
    with_trips, without_trips = results.trips[WITH], results.trips[WITHOUT]
    hit, miss = results.hit, results.miss
    return [
        "## Single-flight",
        "",
        *burst_lines(results),
        "",
        "Ours with `single_flight=True` against ours without, call by call in alternation, chat payload (medians):",
        "",
        "| | with single-flight µs | without µs | overhead |",
        "|---|---|---|---|",
        f"| lookup hit | {hit[WITH].median_us:.1f} | {hit[WITHOUT].median_us:.1f} | "
        f"{results.hit_overhead * 100:+.1f} % |",
        f"| lookup miss + update | {miss[WITH].median_us:.1f} | {miss[WITHOUT].median_us:.1f} | "
        f"{results.miss_overhead * 100:+.1f} % |",
        f"| `invoke` hit, run handler on / off | {results.invoke_hit[WITH].median_us:.1f} | "
        f"{results.invoke_hit[WITHOUT].median_us:.1f} | {results.handler_overhead * 100:+.1f} % |",
        "",
        f"Round trips per miss + update, counted on the cache's connections over {with_trips.misses} misses "
        "(one per command sent alone, one per pipeline): "
        f"{with_trips.round_trips:g} with single-flight ({with_trips.commands:g} commands: "
        f"{', '.join(with_trips.sequence)}), {without_trips.round_trips:g} without "
        f"({without_trips.commands:g} commands: {', '.join(without_trips.sequence)}); "
        f"single-flight adds {results.extra_round_trips:g} (the server counted {with_trips.server_commands:g} "
        f"and {without_trips.server_commands:g} commands).",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run this part alone (pinned to one CPU, as `benchmarks.run` is) and print its section."""
    import argparse

    from benchmarks import run, servers

    parser = argparse.ArgumentParser(prog="python -m benchmarks.single_flight", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one burst per cache, a few calls: smoke test")
    quick = parser.parse_args(argv).quick
    run.quieten()
    print(run.pin_to_one_cpu(), file=sys.stderr)
    with servers.redis_server() as server:
        results = measure(
            server.port, run.DB["single-flight"], run.DB["single-flight upstream"], QUICK_PLAN if quick else PLAN
        )
    print("\n".join(report_lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
