"""A raw-bytes twin of a pymemcache client: the same servers and settings, never its serde.

The cache reads and writes its own bytes. A user's client may carry a serde (Django's
``PyMemcacheCache`` and many projects use ``pickle_serde``), and reading a planted value
through it would unpickle it, so the cache talks through a copy made with no serde. Timeouts
the user left unset ("forever") get the cache's bound, so a server that stops answering
costs one bounded call, never a hung model call.
"""

from __future__ import annotations

import inspect
from typing import Any

#: Constructor arguments never copied: the serde is what we drop; the rest are rebuilt.
NOT_COPIED = frozenset({"self", "server", "servers", "serde", "serializer", "deserializer", "hasher", "client"})
TIMEOUTS = ("connect_timeout", "timeout")


def raw_client_for(client: Any, timeout: float | None) -> Any:
    """Return a client like ``client`` (any pymemcache client) that stores and returns raw bytes."""
    from pymemcache.client.hash import HashClient
    from pymemcache.client.retrying import RetryingClient

    if isinstance(client, RetryingClient):
        return RetryingClient(
            raw_client_for(client._client, timeout),
            attempts=client._attempts,
            retry_delay=client._retry_delay,
            retry_for=client._retry_for or None,
            do_not_retry_for=client._do_not_retry_for or None,
        )
    if isinstance(client, HashClient):
        return _hash_client(client, timeout)
    kwargs = _bounded(_settings_of(client), timeout)
    pool = getattr(client, "client_pool", None)
    if pool is not None:  # a PooledClient
        kwargs.update(max_pool_size=pool.max_size, pool_idle_timeout=pool.idle_timeout)
    return type(client)(client.server, **kwargs)


def _hash_client(client: Any, timeout: float | None) -> Any:
    servers = [node.server for node in client.clients.values()] + list(client._dead_clients)
    servers += [server for server in client._failed_clients if server not in servers]
    kwargs = {name: value for name, value in client.default_kwargs.items() if name not in NOT_COPIED}
    for name in ("retry_attempts", "retry_timeout", "dead_timeout", "use_pooling", "ignore_exc"):
        kwargs[name] = getattr(client, name)
    return type(client)(servers, hasher=type(client.hasher), **_bounded(kwargs, timeout))


def _settings_of(client: Any) -> dict[str, Any]:
    """The constructor arguments ``client`` keeps as attributes of the same name."""
    parameters = inspect.signature(type(client).__init__).parameters
    return {name: getattr(client, name) for name in parameters if name not in NOT_COPIED and hasattr(client, name)}


def _bounded(kwargs: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    for name in TIMEOUTS:
        if kwargs.get(name) is None:
            kwargs[name] = timeout
    return kwargs
