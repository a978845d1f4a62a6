"""``LLM_CACHES[alias]["OPTIONS"]["CLUSTER"] = True``: the LLM cache talks to a Redis Cluster
whose startup nodes are the ``LOCATION`` URLs of the alias's Redis ``CACHES`` entry."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.checks import CheckMessage, Error

from llmcache_django.backends.registry import BackendSpec
from llmcache_django.stores.base import DEFAULT_SERVER_TIMEOUT

#: URL parts a startup node may carry to every node's connections.
URL_SETTINGS = ("username", "password", "socket_timeout", "socket_connect_timeout", "client_name")


class ClusterLocationError(ValueError):
    """A ``LOCATION`` URL cannot be a Redis Cluster startup node."""


def wants_cluster(options: Mapping[str, Any]) -> bool:
    """Whether an ``LLM_CACHES`` alias's OPTIONS ask for Redis Cluster."""
    return bool(options.get("CLUSTER"))


def startup_urls(cache_settings: Mapping[str, Any]) -> list[str]:
    """The startup node URLs of a ``CACHES`` entry's ``LOCATION`` (a string, ``,``/``;`` separated, or a list)."""
    location = cache_settings.get("LOCATION") or []
    urls = re.split("[;,]", location) if isinstance(location, str) else list(location)
    return [str(url).strip() for url in urls if str(url).strip()]


def node_settings(url: str) -> dict[str, Any]:
    """The host, port and connection settings of one startup node URL."""
    from redis.connection import SSLConnection, parse_url

    try:
        parsed = parse_url(url)
    except (ValueError, TypeError) as exc:
        raise ClusterLocationError(f"{url!r} is not a Redis URL: {exc}") from exc
    if "path" in parsed:
        raise ClusterLocationError(f"{url!r} is a unix socket; Redis Cluster nodes are host:port only")
    if parsed.get("db", 0):
        raise ClusterLocationError(f"{url!r} names db {parsed['db']}; Redis Cluster has db 0 only")
    if not parsed.get("host"):
        raise ClusterLocationError(f"{url!r} names no host")
    if parsed.get("connection_class") is SSLConnection:
        parsed["ssl"] = True
    return parsed


def cluster_client(cache_settings: Mapping[str, Any], server_timeout: float | None = DEFAULT_SERVER_TIMEOUT) -> Any:
    """An asyncio ``RedisCluster`` on the ``LOCATION`` startup nodes (it connects on first use;
    the cache derives its sync twin). Settings (password, ssl, timeouts) come from the first URL."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    nodes = [node_settings(url) for url in startup_urls(cache_settings)]
    if not nodes:
        raise ClusterLocationError("LOCATION lists no startup node")
    first = nodes[0]
    settings = {name: first[name] for name in URL_SETTINGS if name in first}
    for name in ("socket_timeout", "socket_connect_timeout"):
        settings.setdefault(name, server_timeout)
    startup = [ClusterNode(node["host"], node.get("port", 6379)) for node in nodes]
    return RedisCluster(startup_nodes=startup, ssl=bool(first.get("ssl")), **settings)


def cluster_messages(
    where: str, backend: str, spec: BackendSpec, cache_settings: Mapping[str, Any]
) -> list[CheckMessage]:
    """System check messages for an alias asking for Redis Cluster."""
    if not spec.can_cluster:
        return [
            Error(
                f"{where}, a {backend or 'backend-less'} cache, with OPTIONS['CLUSTER'] = True: "
                "only a Redis alias can describe a Redis Cluster.",
                hint="Point CACHE at a django-redis or django.core.cache.backends.redis.RedisCache alias "
                "whose LOCATION lists the cluster's startup nodes, or drop CLUSTER.",
                id="llmcache_django.E030",
            )
        ]
    messages: list[CheckMessage] = []
    for url in startup_urls(cache_settings) or [""]:
        try:
            node_settings(url) if url else _no_nodes()
        except ClusterLocationError as exc:
            messages.append(
                Error(
                    f"{where} with OPTIONS['CLUSTER'] = True, but its LOCATION cannot be a startup node: {exc}.",
                    hint="List one or more redis://host:port or rediss://host:port URLs of cluster nodes.",
                    id="llmcache_django.E031",
                )
            )
    return messages


def _no_nodes() -> None:
    raise ClusterLocationError("it lists no startup node")
