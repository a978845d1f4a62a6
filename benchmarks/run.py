"""`python -m benchmarks.run`: start servers, measure everything, write benchmarks/results/."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from langchain_community import cache as upstream_cache

from benchmarks import (
    cases,
    chart,
    concurrency,
    directives,
    end_to_end,
    machine,
    report,
    servers,
    single_flight,
    streaming,
)
from benchmarks import stats_overhead as stats
from benchmarks.contenders import Backend, memcached, memcached_pool, redis_async, redis_sync
from benchmarks.fixtures import payloads
from benchmarks.measurements import Measurements
from benchmarks.targets import evaluate
from benchmarks.timing import Plan

RESULTS = Path(__file__).parent / "results"
#: Redis database per key space: upstream's clear() FLUSHes, so nobody shares one.
DB = {
    "sync ours": 1,
    "sync upstream": 2,
    "async ours": 3,
    "async upstream": 4,
    "stats": 5,
    "streaming": 6,
    "single-flight": 7,
    "single-flight upstream": 8,
}
#: langchain_community.cache names its logger after its file path.
QUIET_LOGGERS = (upstream_cache.logger.name, "llmcache_django")


@dataclass(frozen=True)
class Settings:
    """How much to measure: a full run takes a few minutes on 2 cores."""

    plan: Plan
    concurrency_rounds: int
    stats_plan: Plan
    stream_plan: Plan
    flight_plan: single_flight.FlightPlan


#: The stats plan alternates on every call: the difference it measures is a few µs.
FULL = Settings(
    Plan(rounds=200, batch=10, warmup=100),
    5,
    Plan(rounds=20000, batch=1, warmup=200),
    streaming.PLAN,
    single_flight.PLAN,
)
QUICK = Settings(
    Plan(rounds=3, batch=10, warmup=5),
    1,
    Plan(rounds=3, batch=10, warmup=5),
    streaming.QUICK_PLAN,
    single_flight.QUICK_PLAN,
)


class LogTally(logging.Handler):
    """Counts (instead of printing) what the caches log: 5,000 failures make a lot of lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name} {record.levelname}"] += 1


def quieten() -> LogTally:
    """Route the caches' log records into a tally and silence upstream's per-lookup warning.

    `langchain_core.load.loads` warns on every upstream lookup; printing it would charge
    the baseline with terminal I/O that a production log filter would not have.
    """
    warnings.filterwarnings("ignore", message=".*default value of `allowed_objects`")
    tally = LogTally()
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(tally)
        logger.propagate = False
    return tally


def pin_to_one_cpu() -> str:
    """Run client and servers on one CPU; the servers inherit it when they start.

    On an idle multi-core VM a loopback reply often has to wake another vCPU from its
    idle state, which makes a round trip jump between ~25 and ~90 µs from call to call.
    Sharing one CPU removes that noise; each contender pays the same.
    """
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"client and servers pinned to CPU {cpu}"


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def sync_phase(m: Measurements, backend: Backend, settings: Settings) -> None:
    """Latency matrix and end-to-end invoke for one sync backend."""
    progress(f"{backend.name}: hit / miss / update")
    latencies, stored = cases.measure(backend, payloads(), settings.plan)
    m.latencies += latencies
    m.stored += stored
    progress(f"{backend.name}: FakeListChatModel.invoke on a hit")
    m.end_to_end += end_to_end.measure(backend, settings.plan.scaled(0.5))
    for client in backend.clients.values():
        client.close()


async def async_phase(m: Measurements, port: int, settings: Settings) -> None:
    """Latency matrix and concurrency bursts for the async Redis backend."""
    backend = redis_async(port, DB["async ours"], DB["async upstream"])
    progress("Redis async: hit / miss / update")
    latencies, stored = await cases.ameasure(backend, payloads(), settings.plan)
    m.latencies += latencies
    m.stored += stored
    progress(f"Redis async: {', '.join(map(str, concurrency.LEVELS))} concurrent alookups")
    chat = next(p for p in payloads() if p.name == "chat")
    m.throughputs += await concurrency.measure(backend, chat, settings.concurrency_rounds)
    for client in backend.clients.values():
        await client.aclose()


def measure_all(settings: Settings, pinning: str) -> Measurements:
    """Start both servers, run every phase, stop the servers whatever happens."""
    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(servers.redis_server())
        memcached_server = stack.enter_context(servers.memcached())
        m = Measurements(machine.describe([redis_server, memcached_server]))
        m.machine["affinity"] = pinning
        port = redis_server.port
        sync_phase(m, redis_sync(port, DB["sync ours"], DB["sync upstream"]), settings)
        sync_phase(m, memcached(memcached_server.port), settings)
        pool = [stack.enter_context(servers.memcached()) for _ in range(3)]
        sync_phase(m, memcached_pool([server.port for server in pool]), settings)
        asyncio.run(async_phase(m, port, settings))
        progress("stats overhead")
        chat = next(p for p in payloads() if p.name == "chat")
        m.stats = stats.measure(port, DB["stats"], chat, settings.stats_plan)
        progress("per-call directives: the gate's cost on a hit")
        m.directives = directives.measure(port, DB["stats"], chat, settings.stats_plan)
        progress("streams: a 2,000-token answer replayed, live, recorded")
        m.streaming = streaming.measure(port, DB["streaming"], settings.stream_plan)
        progress(f"single-flight: {single_flight.CALLERS} concurrent identical misses, hit and miss overhead")
        m.single_flight = single_flight.measure(
            port, DB["single-flight"], DB["single-flight upstream"], settings.flight_plan
        )
    return m


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke-test the harness")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place processes")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run, write results.md / results.json / chart.png, print the table and targets."""
    options = arguments(argv)
    tally, started = quieten(), time.monotonic()
    pinning = "not pinned (--no-pin)" if options.no_pin else pin_to_one_cpu()
    m = measure_all(QUICK if options.quick else FULL, pinning)
    m.seconds, m.logged = time.monotonic() - started, dict(tally.counts)
    targets = evaluate(m)
    report.write(m, targets, options.out)
    if not chart.write(m, options.out / "chart.png"):
        progress("matplotlib not installed: no chart.png")
    print(report.markdown(m, targets))
    print("\n".join(target.line() for target in targets))
    return 1 if options.strict and not all(t.met for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
