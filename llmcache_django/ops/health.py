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
from typing import TYPE_CHECKING, Any

from llmcache_django.stores.base import DEFAULT_SERVER_TIMEOUT

if TYPE_CHECKING:
    from llmcache_django.stores.base import Store

#: Read by every probe; not a digest, so never an entry's name.
PROBE_NAME = "health-probe"
#: An answer slower than this many seconds makes the alias degraded.
DEFAULT_SLOW_SECONDS = 0.5

ServerProbe = tuple[str, Callable[[], Any]]


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
    return summarize(alias, run_bounded(server_probes(store), timeout), slow)


def server_probes(store: Store) -> list[ServerProbe]:
    """One read per server the store talks to (each memcached server of a pool on its own)."""
    from llmcache_django.stores.database import DatabaseStore
    from llmcache_django.stores.django import DjangoStore

    cluster_probes = _cluster_node_probes(store)
    if cluster_probes:
        return cluster_probes
    nodes = _pooled_memcached_nodes(store)
    if nodes:
        key = store.key(PROBE_NAME)  # type: ignore[attr-defined]
        return [(_server_name(node.server), _retrying(store, _node_read(node, key))) for node in nodes]
    if isinstance(store, (DatabaseStore, DjangoStore)):
        return [(store.describe(), lambda: _closing_connections(store.get, PROBE_NAME))]
    return [(store.describe(), _retrying(store, lambda: store.get(PROBE_NAME)))]


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


def _pooled_memcached_nodes(store: Store) -> list[Any]:
    """Each server's own client behind a memcached store, where they are safe to use from any thread."""
    from llmcache_django.stores.memcached import MemcachedStore, server_clients

    if not isinstance(store, MemcachedStore):
        return []
    nodes = server_clients(store.client)
    # Plain clients (no pool) share one socket: the store's own get(), under its lock, is the probe.
    return nodes if all(hasattr(node, "client_pool") for node in nodes) else []


def _node_read(node: Any, key: str) -> Callable[[], Any]:
    return lambda: node.get(key)


def _retrying(store: Store, read: Callable[[], Any]) -> Callable[[], Any]:
    """``read``, tried once more on a pooled connection the server dropped, as the cache does."""

    def read_once_more() -> Any:
        try:
            return read()
        except Exception as exc:
            if not store.is_stale_connection(exc):
                raise
        return read()

    return read_once_more


def _closing_connections(read: Callable[[str], Any], name: str) -> Any:
    from django.db import connections

    try:
        return read(name)
    finally:
        connections.close_all()  # this probe thread's own database connections


def _server_name(server: Any) -> str:
    return f"{server[0]}:{server[1]}" if isinstance(server, tuple) else str(server)


def _cluster_node_probes(store: Store) -> list[ServerProbe]:
    """A PING per node of a Redis Cluster (primaries and replicas), each on its own connection."""
    from llmcache_django.stores.redis_cluster import RedisClusterStore

    if not isinstance(store, RedisClusterStore):
        return []
    client = store.client
    return [(node.name, _node_ping(client, node)) for node in sorted(client.get_nodes(), key=lambda node: node.name)]


def _node_ping(client: Any, node: Any) -> Callable[[], Any]:
    return lambda: client.get_redis_connection(node).ping()
