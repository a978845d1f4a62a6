"""The backend registry: one :class:`BackendSpec` per Django cache ``BACKEND`` path.

Everything the app knows about a kind of Django cache lives here once: how an alias on it is
built, which library (and extra) it needs, whether its add is atomic across processes
(single-flight), where its own read timeout lives, why entries that never expire hurt on it.
The handler, the system checks, the deploy checks and the stores read it from here, so a kind
of store is added with one spec (and its store module).

A ``BACKEND`` that subclasses a registered one gets that one's spec; an alias may also name
its spec explicitly: ``LLM_CACHES[alias]["OPTIONS"]["STORE"] = "dotted.path.to.SPEC"``,
resolved with Django's ``import_string``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from llmcache_django.core.cache import LLMCache

#: memcached's default item size (``-I 1m``) less room for the key and item header.
MEMCACHED_ITEM_BYTES = 1024 * 1024 - 1024
REDIS_KEEPS = "Redis keeps them until maxmemory, so memory grows with every new prompt"
VALKEY_KEEPS = "Valkey keeps them until maxmemory, so memory grows with every new prompt"
CULLED_ONLY = "the {place} only shrinks by MAX_ENTRIES culling, so an answer is reused however stale"


@dataclass(frozen=True)
class Note:
    """A system check warning every alias on a backend gets (``W001``, ``W002``)."""

    id: str
    message: str
    hint: str


@dataclass(frozen=True)
class BackendSpec:
    """What the app knows about one Django cache backend (see the module docstring)."""

    #: The ``BACKEND`` dotted path.
    path: str
    #: Dotted path of ``build(settings, **cache_kwargs) -> LLMCache`` (see :mod:`llmcache_django.backends.builders`).
    build: str
    #: The module the backend needs, and the extra that installs it.
    library: str | None = None
    extra: str | None = None
    #: Dotted path of ``client(cache_alias) -> client``: the alias's own raw Redis client.
    client: str | None = None
    #: The client library whose URL syntax ``LOCATION`` follows (``redis``, ``valkey``).
    url_library: str | None = None
    #: Whether the store's add is atomic across processes (single-flight leases; locmem: one process).
    can_lease: bool = False
    #: Whether the alias's server calls honour ``SERVER_TIMEOUT`` (a network server).
    bounded_calls: bool = False
    #: Where the backend's own read timeout lives in ``CACHES[alias]["OPTIONS"]``.
    timeout_option: str | None = None
    #: Why entries that never expire hurt on this backend (``None``: they do not).
    never_expires: str | None = None
    #: Whether ``OPTIONS["CLUSTER"]`` may read its ``LOCATION`` as Redis Cluster startup nodes.
    can_cluster: bool = False
    #: Whether it culls at ``MAX_ENTRIES`` (Django's default: 300).
    culls: bool = False
    #: The largest value its server stores by default, if it has such a limit.
    max_item_bytes: int | None = None
    #: Whether it stores nothing at all.
    stores_nothing: bool = False
    note: Note | None = None

    def builder(self) -> Callable[..., LLMCache]:
        """The function that builds an LLM cache on an alias of this backend."""
        return import_string(self.build)  # type: ignore[no-any-return]

    def client_of(self, cache_alias: str) -> Any:
        """The ``CACHES`` alias's own raw client (Redis-protocol backends only)."""
        if self.client is None:
            raise TypeError(f"{self.path} has no raw client")
        return import_string(self.client)(cache_alias)

    def installed(self) -> bool:
        """Whether the library this backend needs can be imported."""
        from importlib.util import find_spec

        return self.library is None or find_spec(self.library) is not None


def _redis(path: str, library: str, client: str, **fields: Any) -> BackendSpec:
    family = "valkey" if "valkey" in library else "redis"
    return BackendSpec(
        path,
        "llmcache_django.backends.builders.redis_cache",
        library=library,
        extra=f"llmcache-django[{family}]",
        client=f"llmcache_django.backends.clients.{client}",
        url_library=family,
        can_lease=True,
        bounded_calls=True,
        never_expires=VALKEY_KEEPS if family == "valkey" else REDIS_KEEPS,
        **fields,
    )


DJANGO_CACHE_BUILD = "llmcache_django.backends.builders.django_cache"
DJANGO_REDIS = _redis(
    "django_redis.cache.RedisCache",
    "django_redis",
    "django_redis_client",
    timeout_option="SOCKET_TIMEOUT",
    can_cluster=True,
)
BUILTIN_REDIS = _redis(
    "django.core.cache.backends.redis.RedisCache",
    "redis",
    "builtin_redis_client",
    timeout_option="socket_timeout",
    can_cluster=True,
)
VALKEY = _redis("django_valkey.cache.ValkeyCache", "django_valkey", "valkey_client", timeout_option="SOCKET_TIMEOUT")
ASYNC_VALKEY = _redis(
    "django_valkey.async_cache.cache.AsyncValkeyCache",
    "django_valkey",
    "async_valkey_client",
    timeout_option="SOCKET_TIMEOUT",
)
PYMEMCACHE = BackendSpec(
    "django.core.cache.backends.memcached.PyMemcacheCache",
    "llmcache_django.backends.builders.memcached_cache",
    library="pymemcache",
    extra="llmcache-django[memcached]",
    can_lease=True,
    bounded_calls=True,
    timeout_option="timeout",
    never_expires="memcached only evicts them when its memory is full, so an answer is reused however stale",
    max_item_bytes=MEMCACHED_ITEM_BYTES,
)
PYLIBMC = BackendSpec(
    "django.core.cache.backends.memcached.PyLibMCCache", DJANGO_CACHE_BUILD, library="pylibmc", can_lease=True
)
DATABASE = BackendSpec(
    "django.core.cache.backends.db.DatabaseCache",
    DJANGO_CACHE_BUILD,
    can_lease=True,
    never_expires=CULLED_ONLY.format(place="table"),
    culls=True,
)
FILE = BackendSpec(
    "django.core.cache.backends.filebased.FileBasedCache",
    DJANGO_CACHE_BUILD,
    never_expires=CULLED_ONLY.format(place="directory"),
    culls=True,
)
LOCMEM = BackendSpec(
    "django.core.cache.backends.locmem.LocMemCache",
    DJANGO_CACHE_BUILD,
    can_lease=True,
    note=Note(
        "llmcache_django.W002",
        "a LocMemCache: entries are not shared between processes and are lost on restart.",
        "Fine for development; use Redis, Memcached or the database cache in production.",
    ),
)
DUMMY = BackendSpec(
    "django.core.cache.backends.dummy.DummyCache",
    DJANGO_CACHE_BUILD,
    stores_nothing=True,
    note=Note("llmcache_django.W001", "a DummyCache: every lookup misses.", "Point CACHE at a real cache."),
)
#: Any other backend: through Django's cache API, no cross-process lease.
OTHER = BackendSpec("", DJANGO_CACHE_BUILD)

SPECS: dict[str, BackendSpec] = {
    spec.path: spec
    for spec in (DJANGO_REDIS, BUILTIN_REDIS, VALKEY, ASYNC_VALKEY, PYMEMCACHE, PYLIBMC, DATABASE, FILE, LOCMEM, DUMMY)
}


class SpecError(ValueError):
    """``OPTIONS["STORE"]`` does not name a :class:`BackendSpec`."""


def spec_for(backend: str, store: str | None = None) -> BackendSpec:
    """The spec of a ``BACKEND`` path: ``store`` (a dotted path to a spec) if given, else the
    backend's own, else that of the registered backend it subclasses, else :data:`OTHER`."""
    if store is not None:
        return named_spec(store)
    found = SPECS.get(backend)
    if found is not None:
        return found
    for base in _bases(backend):
        if base in SPECS:
            return SPECS[base]
    return OTHER


def spec_of_cache(cache: object) -> BackendSpec:
    """The spec of a Django cache object, by its class (subclasses included)."""
    for base in type(cache).__mro__:
        found = SPECS.get(f"{base.__module__}.{base.__qualname__}")
        if found is not None:
            return found
    return OTHER


def named_spec(path: str) -> BackendSpec:
    """The :class:`BackendSpec` at dotted ``path``, or :class:`SpecError`."""
    try:
        spec = import_string(path)
    except ImportError as exc:
        raise SpecError(f"{path!r} cannot be imported: {exc}") from exc
    if not isinstance(spec, BackendSpec):
        raise SpecError(f"{path!r} is a {type(spec).__name__}, not a llmcache_django.backends.registry.BackendSpec")
    return spec


def _bases(backend: str) -> list[str]:
    """The dotted paths of ``backend``'s base classes, or none if it cannot be imported."""
    module, _, name = backend.rpartition(".")
    try:
        cls = getattr(import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    return [f"{base.__module__}.{base.__qualname__}" for base in getattr(cls, "__mro__", ())[1:]]
