"""Is an alias's server answering? ``probe(alias)``: reachable, degraded or down, within a bound.

The probe reads a key that is never an entry through the store's own clients (each
memcached server of the alias in turn, in parallel), with the alias's timeouts, and gives
up on a server after ``timeout`` seconds, so a paused or partitioned server cannot hang
the caller. :mod:`llmcache_django.ops.health_check` plugs it into django-health-check.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmcache_django.stores.base import DEFAULT_SERVER_TIMEOUT, ServerProbe

#: An answer slower than this many seconds makes the alias degraded.
DEFAULT_SLOW_SECONDS = 0.5


class Status(str, enum.Enum):
    """How an alias's server answered a probe."""

    REACHABLE = "reachable"
    DEGRADED = "degraded"  # some memcached servers down, or a slow answer
    DOWN = "down"


@dataclass(frozen=True)
class ServerHealth:
    """One server's answer: ``error`` is ``None`` when it answered, after ``seconds``."""

    server: str
    error: str | None
    seconds: float | None


@dataclass(frozen=True)
class Health:
    """The result of :func:`probe` for one alias."""

    alias: str
    status: Status
    detail: str
    servers: tuple[ServerHealth, ...] = ()


def probe(alias: str, *, timeout: float = DEFAULT_SERVER_TIMEOUT, slow: float = DEFAULT_SLOW_SECONDS) -> Health:
    """Probe ``LLM_CACHES[alias]``'s server(s); never raises, returns within about ``timeout`` seconds."""
    from llmcache_django.backends.handler import llm_caches

    try:
        store = llm_caches[alias].store
    except Exception as exc:  # a settings mistake: the cache cannot be used at all
        return Health(alias, Status.DOWN, f"cannot be built: {type(exc).__name__}: {exc}")
    return summarize(alias, run_bounded(store.probes(), timeout), slow)


def run_bounded(probes: list[ServerProbe], timeout: float) -> list[ServerHealth]:
    """Run every probe in its own thread; a probe still running after ``timeout`` seconds is down."""
    results: dict[str, ServerHealth] = {}
    threads = [threading.Thread(target=_run, args=(name, read, results), daemon=True) for name, read in probes]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    found = dict(results)  # a probe finishing from now on is too late
    return [found.get(name) or ServerHealth(name, f"no answer within {timeout:g} s", None) for name, _ in probes]


def summarize(alias: str, servers: list[ServerHealth], slow: float) -> Health:
    """Reachable, degraded or down, from each server's answer."""
    failed = [server for server in servers if server.error is not None]
    if failed and len(failed) == len(servers):
        return Health(alias, Status.DOWN, _failures(failed), tuple(servers))
    if failed:
        detail = f"{len(failed)} of {len(servers)} servers down: {_failures(failed)}"
        return Health(alias, Status.DEGRADED, detail, tuple(servers))
    slowest = max(server.seconds or 0.0 for server in servers)
    if slowest > slow:
        return Health(alias, Status.DEGRADED, f"answered in {slowest:.3f} s (slower than {slow:g} s)", tuple(servers))
    return Health(alias, Status.REACHABLE, f"answered in {slowest * 1000:.1f} ms", tuple(servers))


def _run(name: str, read: Callable[[], Any], results: dict[str, ServerHealth]) -> None:
    started = time.perf_counter()
    try:
        read()
    except Exception as exc:
        results[name] = ServerHealth(name, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, None)
    else:
        results[name] = ServerHealth(name, None, time.perf_counter() - started)


def _failures(servers: list[ServerHealth]) -> str:
    return "; ".join(f"{server.server}: {server.error}" for server in servers)
