"""Entries on a Redis Cluster: the Redis store with cluster clients and per-slot multi-key calls."""

from __future__ import annotations

import threading
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

from llmcache_django.stores.base import Store
from llmcache_django.stores.redis import CLEAR_BATCH, RedisStore, _batches
from llmcache_django.stores.redis_clients import ClientSettingError

#: Connection settings both kinds of cluster client take by the same name.
CARRIED = (
    "username",
    "password",
    "credential_provider",
    "client_name",
    "driver_info",
    "encoding",
    "encoding_errors",
    "decode_responses",
    "health_check_interval",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_keepalive_options",
    "socket_read_size",
    "protocol",
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_cert_reqs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "ssl_min_version",
    "ssl_ciphers",
)
TIMEOUTS = ("socket_timeout", "socket_connect_timeout")
AnyCluster = sync_cluster.RedisCluster | async_cluster.RedisCluster


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a redis-py Redis Cluster client (sync or asyncio)."""
    return isinstance(client, AnyCluster)


def cluster_settings(client: AnyCluster) -> dict[str, Any]:
    """The connection settings of a cluster client, as a cluster client's keywords."""
    kwargs = (
        client.connection_kwargs
        if isinstance(client, async_cluster.RedisCluster)
        else client.nodes_manager.connection_kwargs
    )
    settings = {name: kwargs[name] for name in CARRIED if name in kwargs}
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
    settings = cluster_settings(client)
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


class ClusterClearError(RuntimeError):
    """A clear reached some primaries only: ``failed`` names those it could not clear."""

    def __init__(self, removed: int, cleared: list[str], failed: list[str]) -> None:
        super().__init__(
            f"could not clear primary {', '.join(failed)}; removed {removed} entries from "
            f"{', '.join(cleared) or 'no other primary'}"
        )
        self.removed = removed
        self.failed = failed


class RedisClusterStore(RedisStore):
    """Stores each entry as one string on the cluster node owning its slot.

    Multi-key calls never cross slots: ``clear()`` and listing SCAN every primary, then
    UNLINK slot by slot (redis-py splits them) or read each key in a pipeline (redis-py groups
    them by node); the stats hash is one key, so its
    pipeline touches one slot. Async calls use one async cluster client per event loop.
    """

    _client: Any = None

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
        removed, cleared, failed = 0, [], []
        for node in self.client.get_primaries():
            try:
                removed += self._clear_node(node, pattern)
            except Exception as exc:  # the other primaries are still cleared; then say which was not
                failed.append(f"{node.name} ({type(exc).__name__}: {exc})")
            else:
                cleared.append(node.name)
        if failed:
            raise ClusterClearError(removed, cleared, failed)
        return removed

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
