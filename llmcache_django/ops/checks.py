"""System checks for ``LLM_CACHES`` and friends (ids ``llmcache_django.E00x`` / ``W00x``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from llmcache_django.conf import DEFAULT_ALIAS, AliasSettings, alias_problems, app_settings


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


@register(Tags.caches)
def check_llm_cache_prices(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check ``LLM_CACHE_PRICES`` is model name -> per-million-token input and output prices."""
    from llmcache_django.ops.savings import price_problems

    return [
        Error(
            problem,
            hint="LLM_CACHE_PRICES = {'gpt-4o-mini': {'input': 0.15, 'output': 0.60}}  # per million tokens",
            id="llmcache_django.E040",
        )
        for problem in price_problems(app_settings.LLM_CACHE_PRICES)
    ]


def _alias_messages(alias: str, options: Any) -> list[CheckMessage]:
    problems = alias_problems(alias, options)
    if problems:
        return [Error(problem, id=_problem_id(problem)) for problem in problems]
    settings = AliasSettings.of(alias, options)
    if settings.feature_options.get("CLUSTER"):
        from llmcache_django.backends.cluster_settings import cluster_messages

        where = f"LLM_CACHES[{alias!r}] uses CACHES[{settings.cache_alias!r}]"
        messages = cluster_messages(where, settings.backend, settings.spec, settings.cache)
    else:
        messages = _backend_messages(settings)
    return messages + _single_flight_messages(settings)


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


def _backend_messages(settings: AliasSettings) -> list[CheckMessage]:
    where = f"LLM_CACHES[{settings.alias!r}] uses CACHES[{settings.cache_alias!r}]"
    spec = settings.spec
    if spec.note is not None:
        return [Warning(f"{where}, {spec.note.message}", hint=spec.note.hint, id=spec.note.id)]
    if not spec.installed():
        return [
            Error(
                f"{where} ({settings.backend}) but {spec.library} is not installed.",
                hint=f"pip install '{spec.extra or spec.library}'",
                id="llmcache_django.E007",
            )
        ]
    if spec.url_library is not None:
        return _redis_location_messages(where, settings.cache_alias, spec.url_library)
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


def _single_flight_messages(settings: AliasSettings) -> list[CheckMessage]:
    if not settings.feature_options.get("SINGLE_FLIGHT") or settings.spec.can_lease:
        return []
    return [
        Warning(
            f"LLM_CACHES[{settings.alias!r}] has SINGLE_FLIGHT on, but CACHES[{settings.cache_alias!r}] "
            f"({settings.backend}) has no atomic add: identical misses are coalesced within each process only, "
            f"not across processes.",
            hint="Use Redis, Memcached or the database cache to coalesce across processes.",
            id="llmcache_django.W011",
        )
    ]
