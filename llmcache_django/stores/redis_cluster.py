"""Entries on a Redis Cluster: the Redis store with cluster clients and per-slot multi-key calls."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

import redis.asyncio.cluster as async_cluster
import redis.cluster as sync_cluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ClusterDownError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from llmcache_django.stores.base import Node, PartialClearError, ServerProbe, Store
from llmcache_django.stores.redis import CLEAR_BATCH, RedisStore, _batches
from llmcache_django.stores.redis_clients import ClientSettingError, carried_retry

#: Keywords of a cluster client that the derivation sets itself (from the source's topology
#: settings, below), that are one client's own state, or that are deprecated spellings.
SET_HERE = frozenset(
    {
        "host",
        "port",
        "url",
        "startup_nodes",
        "connection_class",
        "connection_pool",
        "redis_connect_func",
        "max_connections",
        "retry",
        "cluster_error_retry_attempts",
        "require_full_coverage",
        "address_remap",
        "reinitialize_steps",
        "load_balancing_strategy",
        "read_from_replicas",
        "event_dispatcher",
        "policy_resolver",
        "metadata_resolver",
        "lib_name",
        "lib_version",
    }
)
TIMEOUTS = ("socket_timeout", "socket_connect_timeout")
AnyCluster = sync_cluster.RedisCluster | async_cluster.RedisCluster


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a redis-py Redis Cluster client (sync or asyncio)."""
    return isinstance(client, AnyCluster)


def cluster_settings(client: AnyCluster, *, asynchronous: bool | None = None) -> dict[str, Any]:
    """The connection settings of a cluster client, as keywords of a cluster client of the
    requested kind (by default its own): every one that kind takes, its retry policy included."""
    if isinstance(client, async_cluster.RedisCluster):
        kwargs, source_async = client.connection_kwargs, True
    else:
        kwargs, source_async = client.nodes_manager.connection_kwargs, False
    target_async = source_async if asynchronous is None else asynchronous
    accepted = _cluster_keywords(target_async)
    settings = {name: value for name, value in kwargs.items() if name in accepted and name not in SET_HERE}
    settings["retry"] = carried_retry(client.retry, target_async)
    connection_class = kwargs.get("connection_class")
    if connection_class is not None and "SSL" in connection_class.__name__:
        settings["ssl"] = True
    if kwargs.get("redis_connect_func") not in (None, getattr(client, "on_connect", None)):
        raise ClientSettingError(
            "The cluster client's redis_connect_func cannot be carried to the other kind of client; "
            "give both clients (RedisLLMCache(client, async_client=...))."
        )
    return settings


def cluster_is_bounded(client: AnyCluster, server_timeout: float | None) -> bool:
    """Whether every call on the cluster client is one try of at most ``server_timeout`` seconds
    to connect and to answer: both timeouts set, none longer, no retries (``None``: any client)."""
    if server_timeout is None:
        return True
    settings = cluster_settings(client)
    timeouts = [settings.get(name) for name in TIMEOUTS]
    short = all(timeout is not None and timeout <= server_timeout for timeout in timeouts)
    return short and not client.retry.get_retries()


def derive_cluster_client(
    client: AnyCluster,
    *,
    asynchronous: bool,
    server_timeout: float | None,
    max_connections: int | None = None,
    retries: bool = True,
) -> Any:
    """A new cluster client of the requested kind: same startup nodes, same connection settings.

    Timeouts ``client`` leaves unset or sets longer become ``server_timeout``; ``max_connections``
    caps each node's pool. ``retries=False`` makes a client that tries each command once
    (redis-py's cluster clients retry 10 times by default); redirections are still followed.
    """
    settings = cluster_settings(client, asynchronous=asynchronous)
    for name in TIMEOUTS:
        if server_timeout is not None and not 0 < (settings.get(name) or 0) <= server_timeout:
            settings[name] = server_timeout
    if not retries:
        settings["retry"] = (AsyncRetry if asynchronous else Retry)(NoBackoff(), 0)
    manager = client.nodes_manager
    settings["require_full_coverage"] = getattr(manager, "require_full_coverage", None) or getattr(
        manager, "_require_full_coverage", True
    )
    settings["address_remap"] = manager.address_remap
    settings["reinitialize_steps"] = client.reinitialize_steps
    settings["load_balancing_strategy"] = client.load_balancing_strategy
    if client.read_from_replicas:  # deprecated spelling: passed only when set
        settings["read_from_replicas"] = True
    if max_connections is not None:
        settings["max_connections"] = max_connections
    module = async_cluster if asynchronous else sync_cluster
    nodes = [module.ClusterNode(node.host, node.port) for node in manager.startup_nodes.values()]
    return module.RedisCluster(startup_nodes=nodes, **settings)


#: What becomes of the entries on a primary a clear could not reach.
UNREACHED_NOTE = "the entries there were not deleted, and are served again if it comes back before they expire"


@functools.cache
def _cluster_keywords(asynchronous: bool) -> frozenset[str]:
    """Every keyword a cluster client of the kind takes (the sync one passes connection
    settings on through ``**kwargs``, filtered by redis-py's allow-list)."""
    if asynchronous:
        return frozenset(inspect.signature(async_cluster.RedisCluster.__init__).parameters)
    named = inspect.signature(sync_cluster.RedisCluster.__init__).parameters
    allowed = set(sync_cluster.REDIS_ALLOWED_KEYS) - set(sync_cluster.KWARGS_DISABLED_KEYS)
    return frozenset(named) | allowed


class RedisClusterStore(RedisStore):
    """Stores each entry as one string on the cluster node owning its slot.

    Multi-key calls never cross slots: ``clear()`` and listing SCAN every primary, then
    UNLINK slot by slot (redis-py splits them) or read each key in a pipeline (redis-py groups
    them by node); the stats hash is one key, so its
    pipeline touches one slot. Async calls use one async cluster client per event loop.
    """

    _client: Any = None
    scripts_many_keys = False  # a script's keys must share a slot: many keys are pipelined

    def __init__(self, prefix: str, **kwargs: Any) -> None:
        self._client_lock = threading.Lock()
        super().__init__(prefix, **kwargs)
        # One primary lost (its replica about to be promoted) answers fast, with a refused
        # connection or CLUSTERDOWN: a miss for the keys it affects, not a pause of the whole
        # cluster. A stalled node (a timeout) or no reachable node at all pauses the cache.
        per_node = (RedisConnectionError, ClusterDownError)
        kept = tuple(error for error in self.outage_errors if not issubclass(error, per_node))
        self.outage_errors = (*kept, RedisClusterException)

    @property
    def client(self) -> Any:
        """The sync cluster client; a derived one is made on first use (a sync cluster client
        connects as it is made, so building the cache opens no connection)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = derive_cluster_client(
                        getattr(self, "_source_for_sync", self._source),
                        asynchronous=False,
                        server_timeout=self._server_timeout,
                        retries=self._server_timeout is None,
                    )
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    def _sync_client(self, client: Any) -> Any:
        if client is not None and cluster_is_bounded(client, self._server_timeout):
            return client
        if client is not None:
            self._source_for_sync = client
        return None

    def _new_async_client(self) -> Any:
        return derive_cluster_client(
            self._source,
            asynchronous=True,
            server_timeout=self._server_timeout,
            max_connections=self._async_max_connections,
            retries=self._server_timeout is None,
        )

    def get(self, name: str) -> bytes | None:
        key = self.prefix + name
        client = self.client
        if client.read_from_replicas or client.load_balancing_strategy:
            return self._read(client, key)
        try:
            # The hot path: straight to the primary owning the key's slot, skipping the
            # cluster client's per-command routing (about 40 µs of Python per lookup).
            node = client.nodes_manager.get_node_from_slot(key_slot(client.encoder.encode(key)))
            return self._read(client.get_redis_connection(node), key)
        except RedisTimeoutError:
            raise  # a stalled node: asking the cluster client would wait on it a second time
        except Exception:  # moved, failed over or not connected: the cluster client sorts it out
            return self._read(client, key)

    def _decodes_responses(self) -> bool:
        return bool(cluster_settings(self._source).get("decode_responses"))

    def describe(self) -> str:
        nodes = ", ".join(node.name for node in self._source.nodes_manager.startup_nodes.values())
        return f"redis cluster {nodes} (prefix {self.prefix!r})"

    def _unlink_matching(self, pattern: str) -> int:
        removed, cleared, failed = 0, [], {}
        for node in self.client.get_primaries():
            try:
                removed += self._clear_node(node, pattern)
            except Exception as exc:  # the other primaries are still cleared; then say which was not
                failed[node.name] = f"{type(exc).__name__}: {exc}"
            else:
                cleared.append(node.name)
        if failed:
            raise PartialClearError(removed, cleared, failed, note=UNREACHED_NOTE)
        return removed

    async def aclear(self) -> int | None:
        # Primary by primary, as clear() does (which says what a lost primary kept): in a thread.
        return await asyncio.to_thread(self.clear)

    def _clear_node(self, node: Any, pattern: str) -> int:
        removed = 0
        keys = self._entry_keys(self.client.scan_iter(match=pattern, count=1000, target_nodes=node))
        for batch in _batches(keys, CLEAR_BATCH):
            removed += self.client.unlink(*batch)  # redis-py sends one UNLINK per slot
        return removed

    # The entry and its lease live on different slots, likely different nodes: a pipeline
    # would let the lease read done before the entry is there. One after the other, then.
    set_ending_lease = Store.set_ending_lease
    aset_ending_lease = Store.aset_ending_lease

    def primaries(self) -> list[Any]:
        """The cluster's primary nodes, as the sync client currently knows them."""
        return list(self.client.get_primaries())

    def nodes(self, *, measure: bool = True) -> list[Node]:
        """Every node, primaries and replicas; ``measure``: with its keys and memory used."""
        known = sorted(self.client.get_nodes(), key=lambda node: node.name)
        return [_measured(self.client, node) if measure else Node(node.name, _role(node)) for node in known]

    def probes(self) -> list[ServerProbe]:
        """A PING per node (primaries and replicas), each on its own connection."""
        client = self.client
        known = sorted(client.get_nodes(), key=lambda node: node.name)
        return [(node.name, _node_ping(client, node)) for node in known]


def _role(node: Any) -> str:
    return "primary" if node.server_type == "primary" else "replica"


def _measured(client: Any, node: Any) -> Node:
    try:
        connection = client.get_redis_connection(node)  # replicas get one on first use
        keys = int(connection.dbsize())
        used = int(connection.info("memory")["used_memory"])
    except Exception as exc:  # a dead node is shown as down, the others still answer
        return Node(node.name, _role(node), up=False, error=f"{type(exc).__name__}: {exc}")
    return Node(node.name, _role(node), keys=keys, bytes_used=used)


def _node_ping(client: Any, node: Any) -> Callable[[], Any]:
    return lambda: client.get_redis_connection(node).ping()
