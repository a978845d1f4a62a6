"""System checks for ``LLM_CACHES`` and friends (ids ``llmcache_django.E00x`` / ``W00x``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from llmcache_django.conf import DEFAULT_ALIAS, alias_problems, app_settings

DUMMY_BACKEND = "django.core.cache.backends.dummy.DummyCache"
LOCMEM_BACKEND = "django.core.cache.backends.locmem.LocMemCache"
REQUIRED_LIBRARIES = {
    "django_redis.cache.RedisCache": ("django_redis", "llmcache-django[redis]"),
    "django.core.cache.backends.redis.RedisCache": ("redis", "llmcache-django[redis]"),
    "django.core.cache.backends.memcached.PyMemcacheCache": ("pymemcache", "llmcache-django[memcached]"),
    "django_valkey.cache.ValkeyCache": ("django_valkey", "llmcache-django[valkey]"),
    "django_valkey.async_cache.cache.AsyncValkeyCache": ("django_valkey", "llmcache-django[valkey]"),
}
#: The client library whose URL syntax a Redis-protocol backend's LOCATION follows.
URL_LIBRARIES = {"redis": "redis", "django_redis": "redis", "django_valkey": "valkey"}


@register(Tags.caches)
def check_llm_caches(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check ``LLM_CACHES`` is well formed and each alias can be built."""
    config = app_settings.LLM_CACHES
    if not isinstance(config, Mapping):
        return [
            Error(
                f"LLM_CACHES must be a dict of alias -> options, not {type(config).__name__}.",
                hint="LLM_CACHES = {'default': {'CACHE': 'default'}}",
                id="llmcache_django.E001",
            )
        ]
    messages: list[CheckMessage] = []
    for alias, options in config.items():
        messages += _alias_messages(alias, options)
    if app_settings.LLM_CACHE_SET_GLOBAL and DEFAULT_ALIAS not in config:
        messages.append(
            Error(
                "LLM_CACHE_SET_GLOBAL is True but LLM_CACHES has no 'default' alias to install.",
                hint="Add LLM_CACHES['default'], or set LLM_CACHE_SET_GLOBAL = False.",
                id="llmcache_django.E006",
            )
        )
    return messages


def _alias_messages(alias: str, options: Any) -> list[CheckMessage]:
    problems = alias_problems(alias, options)
    if problems:
        return [Error(problem, id=_problem_id(problem)) for problem in problems]
    cache_alias = options.get("CACHE", DEFAULT_ALIAS)
    backend = app_settings.CACHES[cache_alias].get("BACKEND", "")
    if isinstance(options.get("OPTIONS"), Mapping) and options["OPTIONS"].get("CLUSTER"):
        from llmcache_django.cluster_settings import cluster_messages

        where = f"LLM_CACHES[{alias!r}] uses CACHES[{cache_alias!r}]"
        return cluster_messages(where, backend, app_settings.CACHES[cache_alias]) + _single_flight_messages(
            alias, cache_alias, options
        )
    return _backend_messages(alias, cache_alias, backend) + _single_flight_messages(alias, cache_alias, options)


def _problem_id(problem: str) -> str:
    if "['SINGLE_FLIGHT']" in problem:
        return "llmcache_django.E011"
    if "['CACHE']" in problem:
        return "llmcache_django.E002"
    if "['TTL']" in problem:
        return "llmcache_django.E003"
    if "['NAMESPACE']" in problem:
        return "llmcache_django.E005"
    if "must be a dict" in problem and "OPTIONS" not in problem:
        return "llmcache_django.E001"
    return "llmcache_django.E004"  # unknown key or option, or an option of the wrong type


def _backend_messages(alias: str, cache_alias: str, backend: str) -> list[CheckMessage]:
    where = f"LLM_CACHES[{alias!r}] uses CACHES[{cache_alias!r}]"
    if backend == DUMMY_BACKEND:
        return [
            Warning(
                f"{where}, a DummyCache: every lookup misses.",
                hint="Point CACHE at a real cache.",
                id="llmcache_django.W001",
            )
        ]
    if backend == LOCMEM_BACKEND:
        return [
            Warning(
                f"{where}, a LocMemCache: entries are not shared between processes and are lost on restart.",
                hint="Fine for development; use Redis, Memcached or the database cache in production.",
                id="llmcache_django.W002",
            )
        ]
    required = REQUIRED_LIBRARIES.get(backend)
    if required and not _importable(required[0]):
        return [
            Error(
                f"{where} ({backend}) but {required[0]} is not installed.",
                hint=f"pip install '{required[1]}'",
                id="llmcache_django.E007",
            )
        ]
    if required and required[0] in URL_LIBRARIES:
        return _redis_location_messages(where, cache_alias, URL_LIBRARIES[required[0]])
    return []


def _redis_location_messages(where: str, cache_alias: str, library: str) -> list[CheckMessage]:
    from importlib import import_module

    client_library: Any = import_module(library)
    location = app_settings.CACHES[cache_alias].get("LOCATION") or []
    urls = re.split("[;,]", location) if isinstance(location, str) else list(location)
    messages: list[CheckMessage] = []
    for url in (url.strip() for url in urls if str(url).strip()):
        try:
            client_library.ConnectionPool.from_url(url)  # parses only; connects on first use
        except (ValueError, TypeError) as exc:
            messages.append(
                Error(
                    f"{where}, whose LOCATION {url!r} is not a {library.capitalize()} URL: {exc}.",
                    hint=f"Use {library}://host:port/db, {library}s://host:port/db or unix:///path/to/socket.",
                    id="llmcache_django.E008",
                )
            )
    return messages


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


#: Backends whose add is atomic across processes (or, for locmem, holds one process only).
LEASING_BACKENDS = frozenset(
    {
        "django_redis.cache.RedisCache",
        "django.core.cache.backends.redis.RedisCache",
        "django.core.cache.backends.memcached.PyMemcacheCache",
        "django.core.cache.backends.memcached.PyLibMCCache",
        "django.core.cache.backends.db.DatabaseCache",
        LOCMEM_BACKEND,
    }
)


def _single_flight_messages(alias: str, cache_alias: str, options: Any) -> list[CheckMessage]:
    backend = app_settings.CACHES[cache_alias].get("BACKEND", "")
    if not options.get("OPTIONS", {}).get("SINGLE_FLIGHT") or backend in LEASING_BACKENDS:
        return []
    return [
        Warning(
            f"LLM_CACHES[{alias!r}] has SINGLE_FLIGHT on, but CACHES[{cache_alias!r}] ({backend}) has no atomic "
            f"add: identical misses are coalesced within each process only, not across processes.",
            hint="Use Redis, Memcached or the database cache to coalesce across processes.",
            id="llmcache_django.W011",
        )
    ]
