"""Derive a sync redis-py client from an async one and back, on the same server and settings."""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection as async_connection
import redis.connection as sync_connection

#: Connection settings that mean the same thing to the sync and async clients.
PORTABLE_SETTINGS = frozenset(
    {
        "host",
        "port",
        "path",
        "db",
        "username",
        "password",
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_keepalive_options",
        "retry_on_timeout",
        "encoding",
        "encoding_errors",
        "decode_responses",
        "health_check_interval",
        "client_name",
        "protocol",
        "ssl_keyfile",
        "ssl_certfile",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_data",
        "ssl_check_hostname",
        "ssl_min_version",
        "ssl_ciphers",
    }
)
SYNC_TO_ASYNC: dict[type, type] = {
    sync_connection.Connection: async_connection.Connection,
    sync_connection.SSLConnection: async_connection.SSLConnection,
    sync_connection.UnixDomainSocketConnection: async_connection.UnixDomainSocketConnection,
}
ASYNC_TO_SYNC = {value: key for key, value in SYNC_TO_ASYNC.items()}


def async_client_for(client: redis.Redis, max_connections: int, timeout: float) -> redis.asyncio.Redis:
    """Return an async client for ``client``'s server with a bounded, blocking pool.

    Callers beyond ``max_connections`` wait up to ``timeout`` seconds for a connection
    instead of failing with "Too many connections".
    """
    pool = client.connection_pool
    connection_class = SYNC_TO_ASYNC.get(pool.connection_class, async_connection.Connection)
    async_pool = redis.asyncio.BlockingConnectionPool(
        max_connections=max_connections,
        timeout=timeout,
        connection_class=connection_class,
        **_portable(pool.connection_kwargs, connection_class),
    )
    return redis.asyncio.Redis(connection_pool=async_pool)


def sync_client_for(client: redis.asyncio.Redis) -> redis.Redis:
    """Return a sync client for ``client``'s server and connection settings."""
    pool = client.connection_pool
    connection_class = ASYNC_TO_SYNC.get(pool.connection_class, sync_connection.Connection)
    sync_pool = redis.ConnectionPool(
        connection_class=connection_class,
        max_connections=pool.max_connections,
        **_portable(pool.connection_kwargs, connection_class),
    )
    return redis.Redis(connection_pool=sync_pool)


def _portable(settings: dict[str, Any], connection_class: type) -> dict[str, Any]:
    accepted = _accepted_settings(connection_class)
    return {name: value for name, value in settings.items() if name in PORTABLE_SETTINGS & accepted}


@cache
def _accepted_settings(connection_class: type) -> frozenset[str]:
    names: set[str] = set()
    for klass in connection_class.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(inspect.signature(init).parameters)
    return frozenset(names)
