"""Each node of a many-node store as the admin shows it: up or down, keys, memory used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmcache_django.stores.base import Store


@dataclass(frozen=True)
class NodeState:
    """One server of a cluster: ``error`` is ``None`` when it answered."""

    name: str
    role: str
    up: bool
    keys: int | None = None
    bytes_used: int | None = None
    error: str | None = None


def node_states(store: Store) -> list[NodeState]:
    """The state of every node of a Redis Cluster store (``[]`` for single-server stores)."""
    from llmcache_django.stores.redis_cluster import RedisClusterStore

    if not isinstance(store, RedisClusterStore):
        return []
    client = store.client
    return [_state(client, node) for node in sorted(client.get_nodes(), key=lambda node: node.name)]


def _state(client: Any, node: Any) -> NodeState:
    role = "primary" if node.server_type == "primary" else "replica"
    try:
        connection = client.get_redis_connection(node)  # replicas get one on first use
        keys = int(connection.dbsize())
        used = int(connection.info("memory")["used_memory"])
    except Exception as exc:  # a dead node is shown as down, the others still answer
        return NodeState(node.name, role, up=False, error=f"{type(exc).__name__}: {exc}")
    return NodeState(node.name, role, up=True, keys=keys, bytes_used=used)
