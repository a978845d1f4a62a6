"""New redis-py (or valkey-py) clients with every connection setting of a given one: sync from
async, async from sync, or the same kind again (for another event loop, or with the cache's
time bound added).

valkey-py is a fork of redis-py with the same modules under ``valkey``: a client of either
library is derived with the classes of its own library (its "family").
"""

from __future__ import annotations

import copy
import importlib
import inspect
from functools import cache
from types import ModuleType
from typing import Any

#: The libraries whose clients the cache can derive: redis-py and its fork valkey-py.
FAMILIES = ("redis", "valkey")
#: The submodules of a family the derivation uses.
FAMILY_MODULES = (
    "asyncio",
    "backoff",
    "asyncio.connection",
    "asyncio.retry",
    "asyncio.sentinel",
    "connection",
    "retry",
    "sentinel",
    "_parsers",
)
#: (sync, async) twins by class name, in the family's connection, sentinel and parser modules.
CONNECTION_TWIN_NAMES = [
    ("connection", "Connection", "Connection"),
    ("connection", "SSLConnection", "SSLConnection"),
    ("connection", "UnixDomainSocketConnection", "UnixDomainSocketConnection"),
    ("sentinel", "SentinelManagedConnection", "SentinelManagedConnection"),
    ("sentinel", "SentinelManagedSSLConnection", "SentinelManagedSSLConnection"),
]
PARSER_TWIN_NAMES = [
    ("_RESP2Parser", "_AsyncRESP2Parser"),
    ("_RESP3Parser", "_AsyncRESP3Parser"),
    ("_HiredisParser", "_AsyncHiredisParser"),  # redis-py
    ("_LibvalkeyParser", "_AsyncLibvalkeyParser"),  # valkey-py
]
#: Entries of ``connection_kwargs`` that are one pool's own state, not settings: the new pool
#: makes its own (copying them would tie the new pool's connections to the old pool).
POOL_STATE = frozenset(
    {
        "connection_pool",
        "himport_registry",
        "maint_notifications_pool_handler",
        "orig_host_address",
        "orig_socket_timeout",
        "orig_socket_connect_timeout",
    }
)
TIMEOUTS = ("socket_timeout", "socket_connect_timeout")
AnyClient = Any  # a redis.Redis or redis.asyncio.Redis, or valkey-py's twins
AnyPool = Any


class ClientSettingError(ValueError):
    """A setting of the given client has no equivalent in the client the cache must derive."""


def family_of(client: Any) -> ModuleType:
    """The library (``redis`` or ``valkey``) whose client (or pool) ``client`` is."""
    name = type(client).__module__.partition(".")[0]
    return _family(name if name in FAMILIES else "redis")


@cache
def _family(name: str) -> ModuleType:
    for module in FAMILY_MODULES:
        importlib.import_module(f"{name}.{module}")
    return importlib.import_module(name)


def is_async(client: Any) -> bool:
    """Whether ``client`` is an asyncio client (redis-py's or valkey-py's)."""
    return isinstance(client, family_of(client).asyncio.Redis)


def is_bounded(client: AnyClient, server_timeout: float | None) -> bool:
    """Whether every call on ``client`` is one try of at most ``server_timeout`` seconds to
    connect and to answer: both timeouts set, none longer, and no retries (``None``: any client)."""
    if server_timeout is None:
        return True
    settings = _pool_of(client).connection_kwargs
    timeouts = [settings.get(name) for name in TIMEOUTS]
    return all(timeout is not None and timeout <= server_timeout for timeout in timeouts) and not _retries(settings)


def _retries(settings: dict[str, Any]) -> bool:
    """Whether connections made with ``settings`` retry a failed call (as redis-py's ``Connection`` decides)."""
    retry = settings.get("retry")
    if retry is not None:
        return bool(retry._retries)  # valkey-py's Retry has no get_retries()
    return bool(settings.get("retry_on_error") or settings.get("retry_on_timeout"))


def derive_client(
    client: AnyClient,
    *,
    asynchronous: bool,
    server_timeout: float | None,
    max_connections: int | None = None,
    retries: bool = True,
) -> Any:
    """Return a new client of the requested kind with every connection setting of ``client``.

    Timeouts ``client`` leaves unset or sets longer become ``server_timeout``;
    ``max_connections`` caps the new pool (a blocking pool stays blocking, with its timeout).
    ``retries=False`` makes a client that never retries a failed call, whatever ``client``'s
    ``retry`` says. A Sentinel-managed client gives a client asking the same sentinels for the
    same service. Raises :class:`ClientSettingError` naming a setting that has no equivalent
    on the other kind of client.
    """
    pool = _pool_of(client)
    family = family_of(client)
    connection_class = pool.connection_class
    if asynchronous != is_async(client):
        connection_class = _twin(connection_class, _connection_twins(family), asynchronous, "connection_class")
    settings = _settings(pool, connection_class, asynchronous, server_timeout, family)
    if not retries:
        settings["retry"] = _no_retry(family, asynchronous)
    limit = _limit(pool.max_connections, max_connections)
    if isinstance(pool, family.sentinel.SentinelConnectionPool | family.asyncio.sentinel.SentinelConnectionPool):
        new_pool = _sentinel_pool(pool, asynchronous, server_timeout, connection_class, limit, settings, retries)
    else:
        new_pool = _pool(pool, asynchronous, connection_class, limit, settings)
    client_class = family.asyncio.Redis if asynchronous else family.Redis
    # The client (not the pool) registers a streaming credential provider for re-authentication.
    return client_class(connection_pool=new_pool, credential_provider=settings.get("credential_provider"))


def carried_retry(retry: Any, asynchronous: bool) -> Any:
    """A copy of a client's ``Retry`` for a client of the requested kind (sync or asyncio):
    same backoff, attempts and errors, its own backoff state."""
    family = family_of(retry)
    if not isinstance(retry, family.retry.Retry | family.asyncio.retry.Retry):
        return retry  # a policy of the caller's own: used as given
    if isinstance(retry, family.asyncio.retry.Retry) == asynchronous:
        return copy.deepcopy(retry)
    return _crossed("retry", retry, asynchronous, family)


def pools_of(client: AnyClient) -> list[AnyPool]:
    """The connection pools ``client`` uses: its own and, under Sentinel, the sentinels'."""
    pool = _pool_of(client)
    manager = getattr(pool, "sentinel_manager", None)
    sentinels = manager.sentinels if manager is not None else []
    return [pool, *(sentinel.connection_pool for sentinel in sentinels)]


def _pool_of(client: Any) -> Any:
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        raise ClientSettingError(
            f"{type(client).__name__} has no connection pool to take settings from; "
            "give a redis.Redis or redis.asyncio.Redis client (Redis Cluster is not supported yet)."
        )
    return pool


def _pool(pool: Any, asynchronous: bool, connection_class: type, limit: int | None, settings: dict[str, Any]) -> Any:
    family = family_of(pool)
    module = family.asyncio if asynchronous else family
    if isinstance(pool, family.BlockingConnectionPool | family.asyncio.BlockingConnectionPool):
        blocking = {"max_connections": limit, "timeout": pool.timeout}
        return module.BlockingConnectionPool(connection_class=connection_class, **blocking, **settings)
    return module.ConnectionPool(connection_class=connection_class, max_connections=limit, **settings)


def _sentinel_pool(
    pool: Any,
    asynchronous: bool,
    server_timeout: float | None,
    connection_class: type,
    limit: int | None,
    settings: dict[str, Any],
    retries: bool,
) -> Any:
    family = family_of(pool)
    module = family.asyncio.sentinel if asynchronous else family.sentinel
    source = pool.sentinel_manager
    manager = module.Sentinel(
        [],
        min_other_sentinels=source.min_other_sentinels,
        sentinel_kwargs=source.sentinel_kwargs,
        force_master_ip=getattr(source, "_force_master_ip", None),
    )
    manager.sentinels = [
        derive_client(sentinel, asynchronous=asynchronous, server_timeout=server_timeout, retries=retries)
        for sentinel in source.sentinels
    ]
    return module.SentinelConnectionPool(
        pool.service_name,
        manager,
        is_master=pool.is_master,
        check_connection=pool.check_connection,
        connection_class=connection_class,
        max_connections=limit,
        **settings,
    )


def _settings(
    pool: Any, target_class: type, asynchronous: bool, server_timeout: float | None, family: ModuleType
) -> dict[str, Any]:
    crossing = asynchronous != isinstance(pool, family.asyncio.ConnectionPool)
    accepted = _parameters(target_class)
    defaults = _parameters(pool.connection_class)
    settings: dict[str, Any] = {}
    for name, value in pool.connection_kwargs.items():
        if name in POOL_STATE:
            continue
        carried = _crossed(name, value, asynchronous, family) if crossing else _copied(value)
        if name in accepted:
            settings[name] = carried
        elif value is not defaults.get(name) and value != defaults.get(name):
            raise ClientSettingError(
                f"The client's {name}={value!r} has no equivalent on a redis-py "
                f"{'asyncio' if asynchronous else 'sync'} client, so the cache cannot derive one with "
                f"the same settings; give both clients (RedisLLMCache(client, async_client=...))."
            )
    for name in TIMEOUTS:
        if name in accepted and server_timeout is not None and not 0 < (settings.get(name) or 0) <= server_timeout:
            settings[name] = server_timeout
    return settings


def _no_retry(family: ModuleType, asynchronous: bool) -> Any:
    """A ``retry`` setting that makes one try only (a miss costs less than a wait)."""
    retry_class = family.asyncio.retry.Retry if asynchronous else family.retry.Retry
    return retry_class(family.backoff.NoBackoff(), 0)


def _crossed(name: str, value: Any, asynchronous: bool, family: ModuleType) -> Any:
    if isinstance(value, family.retry.Retry | family.asyncio.retry.Retry):
        retry_class = family.asyncio.retry.Retry if asynchronous else family.retry.Retry
        return retry_class(copy.deepcopy(value._backoff), value._retries, tuple(value._supported_errors))
    if inspect.isclass(value) and issubclass(value, family._parsers.BaseParser):
        return _twin(value, _parser_twins(family), asynchronous, name)
    if name == "redis_connect_func" and value is not None:
        # It gets a sync or an async connection and drives it accordingly: it cannot serve both.
        raise ClientSettingError(
            f"The client's redis_connect_func={value!r} works on {'sync' if asynchronous else 'asyncio'} "
            "connections only; give both clients (RedisLLMCache(client, async_client=...))."
        )
    return value


def _copied(value: Any) -> Any:
    # A Retry keeps backoff state: each pool gets its own, as redis-py's own constructor does.
    return copy.deepcopy(value) if type(value).__name__ == "Retry" else value


@cache
def _connection_twins(family: ModuleType) -> list[tuple[type, type]]:
    """(sync, async) connection classes of ``family``: a derived client uses its source's twin."""
    modules = {"connection": (family.connection, family.asyncio.connection)}
    modules["sentinel"] = (family.sentinel, family.asyncio.sentinel)
    return [
        (getattr(modules[where][0], sync_name), getattr(modules[where][1], async_name))
        for where, sync_name, async_name in CONNECTION_TWIN_NAMES
    ]


@cache
def _parser_twins(family: ModuleType) -> list[tuple[type, type]]:
    """(sync, async) response parser classes of ``family``."""
    parsers = family._parsers
    return [
        (getattr(parsers, sync_name), getattr(parsers, async_name))
        for sync_name, async_name in PARSER_TWIN_NAMES
        if hasattr(parsers, sync_name) and hasattr(parsers, async_name)
    ]


def _twin(klass: type, twins: list[tuple[type, type]], asynchronous: bool, setting: str) -> type:
    for sync_class, async_class in twins:
        if klass in (sync_class, async_class):
            return async_class if asynchronous else sync_class
    raise ClientSettingError(
        f"The client's {setting} {klass.__module__}.{klass.__qualname__} has no known "
        f"{'asyncio' if asynchronous else 'sync'} counterpart; give both clients "
        "(RedisLLMCache(client, async_client=...))."
    )


def _limit(source: int | None, cap: int | None) -> int | None:
    if cap is None:
        return source
    return cap if source is None else min(source, cap)


@cache
def _parameters(connection_class: type) -> dict[str, Any]:
    """Every keyword ``connection_class`` (or a base) takes, with its default (or ``None``)."""
    names: dict[str, Any] = {}
    for klass in connection_class.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for name, parameter in inspect.signature(init).parameters.items():
            if parameter.kind is parameter.KEYWORD_ONLY or parameter.kind is parameter.POSITIONAL_OR_KEYWORD:
                names.setdefault(name, None if parameter.default is parameter.empty else parameter.default)
    return names
