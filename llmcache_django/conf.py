"""Settings, read live so ``override_settings`` just works."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from llmcache_django.core.ttl import ttl_problem

if TYPE_CHECKING:
    from llmcache_django.backends.registry import BackendSpec

DEFAULT_ALIAS = "default"
DEFAULT_NAMESPACE = "llmcache"
ALIAS_KEYS = frozenset({"CACHE", "TTL", "NAMESPACE", "OPTIONS"})
#: Feature options understood by every backend (backend options come from ``CACHES``).
FEATURE_OPTIONS: Mapping[str, type | tuple[type, ...]] = {
    "COMPRESS_MIN_BYTES": int,  # zstd-compress entries at least this large
    "MAX_ENTRY_BYTES": (int, type(None)),  # skip (and warn about) larger entries
    "STATS": bool,  # keep hit/miss/write/error counters
    "ASYNC_MAX_CONNECTIONS": int,  # Redis: bounded async pool size
    "ASYNC_POOL_TIMEOUT": (int, float),  # Redis: seconds to wait for a pooled connection
    "SERVER_TIMEOUT": (int, float, type(None)),  # Redis, memcached: bound on one server call
    "CLUSTER": bool,  # Redis: LOCATION lists Redis Cluster startup nodes
    "SINGLE_FLIGHT": (bool, int, float),  # one model call per burst of identical misses; a number: the wait bound
    "STORE": str,  # dotted path to a llmcache_django.backends.registry.BackendSpec: how to store on this alias
    "SCOPE": (str, type(None)),  # a request's scope: None, "user", or a dotted path to callable(request) -> str | None
    "REQUEST_DIRECTIVES": (dict, type(None)),  # {"header": ..., "permission": ...}: directives from a request header
}
#: The keys of OPTIONS["REQUEST_DIRECTIVES"]; "header" is required.
REQUEST_DIRECTIVES_KEYS = frozenset({"header", "permission"})
# Memcached keys are at most 250 bytes with no whitespace or control characters.
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
MISSING = object()


class Settings:
    """Typed access to this app's settings, read from ``django.conf.settings`` each time."""

    @property
    def LLM_CACHES(self) -> Any:
        return getattr(settings, "LLM_CACHES", {DEFAULT_ALIAS: {}})

    @property
    def LLM_CACHE_SET_GLOBAL(self) -> bool:
        return bool(getattr(settings, "LLM_CACHE_SET_GLOBAL", True))

    @property
    def LLM_CACHE_PRICES(self) -> Any:
        """Model name -> ``{"input": ..., "output": ...}`` per million tokens (no prices: no money shown)."""
        return getattr(settings, "LLM_CACHE_PRICES", {})

    @property
    def CACHES(self) -> Any:
        return getattr(settings, "CACHES", {})


app_settings = Settings()


@dataclass
class AliasSettings:
    """One valid ``LLM_CACHES`` alias and the ``CACHES`` alias it stores its entries in:
    parsed once, for the handler, the checks and the deploy checks alike."""

    alias: str
    options: Mapping[str, Any]
    cache_alias: str
    cache: Mapping[str, Any]

    @classmethod
    def of(cls, alias: str, config: Mapping[str, Any]) -> AliasSettings:
        """The settings of ``LLM_CACHES[alias] = config``, which :func:`alias_problems` found valid."""
        cache_alias = config.get("CACHE", DEFAULT_ALIAS)
        return cls(alias, config, cache_alias, app_settings.CACHES[cache_alias])

    @property
    def backend(self) -> str:
        return str(self.cache.get("BACKEND", ""))

    @property
    def feature_options(self) -> Mapping[str, Any]:
        return self.options.get("OPTIONS", {})  # type: ignore[no-any-return]

    @property
    def where(self) -> str:
        return f"LLM_CACHES[{self.alias!r}]"

    @property
    def namespace(self) -> str:
        return str(self.options.get("NAMESPACE", DEFAULT_NAMESPACE))

    @property
    def ttl(self) -> float | None:
        """``TTL``, or the ``CACHES`` alias's ``TIMEOUT`` (Django's default 300) when absent."""
        return self.options["TTL"] if "TTL" in self.options else self.cache.get("TIMEOUT", 300)  # type: ignore[no-any-return]

    @property
    def scope(self) -> str | None:
        """``OPTIONS["SCOPE"]``: how a request's scope is found (``None``: one shared cache)."""
        return self.feature_options.get("SCOPE")

    @property
    def request_directives(self) -> Mapping[str, Any] | None:
        """``OPTIONS["REQUEST_DIRECTIVES"]``: the header directives are read from, and who may send them."""
        return self.feature_options.get("REQUEST_DIRECTIVES")

    @cached_property
    def spec(self) -> BackendSpec:
        """How entries are stored on this alias (see :mod:`llmcache_django.backends.registry`)."""
        from llmcache_django.backends.registry import spec_for

        return spec_for(self.backend, self.feature_options.get("STORE"))


def alias_settings(alias: str) -> AliasSettings:
    """The settings of ``LLM_CACHES[alias]``; ``ImproperlyConfigured`` naming every problem."""
    config = app_settings.LLM_CACHES
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(f"LLM_CACHES must be a dict of alias -> options, not {type(config).__name__}.")
    if alias not in config:
        raise ImproperlyConfigured(
            f"LLM cache alias {alias!r} is not in LLM_CACHES (defined: {', '.join(config) or 'none'})."
        )
    problems = alias_problems(alias, config[alias])
    if problems:
        raise ImproperlyConfigured(" ".join(problems))
    return AliasSettings.of(alias, config[alias])


def alias_problems(alias: str, config: Any) -> list[str]:
    """Describe everything wrong with ``LLM_CACHES[alias]``; empty when it is valid."""
    where = f"LLM_CACHES[{alias!r}]"
    if not isinstance(config, Mapping):
        return [f"{where} must be a dict like {{'CACHE': 'default'}}, not {type(config).__name__}."]
    problems = [
        f"{where} has unknown key {key!r}; allowed keys are {', '.join(sorted(ALIAS_KEYS))}."
        for key in config
        if key not in ALIAS_KEYS
    ]
    problems += _cache_problems(where, config.get("CACHE", "default"))
    problems += _ttl_problems(where, config.get("TTL", MISSING))
    problems += _namespace_problems(where, config.get("NAMESPACE", DEFAULT_NAMESPACE))
    problems += _options_problems(where, config.get("OPTIONS", {}))
    return problems


def _cache_problems(where: str, cache_alias: Any) -> list[str]:
    caches = app_settings.CACHES
    if isinstance(cache_alias, str) and cache_alias in caches:
        return []
    known = ", ".join(repr(name) for name in caches) or "none"
    return [
        f"{where}['CACHE'] = {cache_alias!r} is not in CACHES (defined: {known}); "
        f"add it to CACHES or point CACHE at one of them."
    ]


def _ttl_problems(where: str, ttl: Any) -> list[str]:
    problem = None if ttl is MISSING else ttl_problem(ttl)
    if problem is None:
        return []
    return [f"{where}['TTL'] = {problem}, or leave it out to use the CACHES alias's TIMEOUT."]


def _namespace_problems(where: str, namespace: Any) -> list[str]:
    if isinstance(namespace, str) and NAMESPACE_RE.match(namespace):
        return []
    return [
        f"{where}['NAMESPACE'] = {namespace!r} is invalid; use 1-64 characters from "
        f"letters, digits and _ . : - (it becomes part of every key)."
    ]


def _options_problems(where: str, options: Any) -> list[str]:
    if not isinstance(options, Mapping):
        return [f"{where}['OPTIONS'] must be a dict, not {type(options).__name__}."]
    problems = []
    for name, value in options.items():
        expected = FEATURE_OPTIONS.get(name)
        if expected is None:
            allowed = ", ".join(sorted(FEATURE_OPTIONS))
            problems.append(f"{where}['OPTIONS'] has unknown option {name!r}; allowed: {allowed}.")
        elif not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
            problems.append(f"{where}['OPTIONS'][{name!r}] = {value!r} has the wrong type.")
        elif name == "SINGLE_FLIGHT":
            problems += _single_flight_problems(where, value)
        elif name == "STORE":
            problems += _store_problems(where, value)
        elif name == "SCOPE" and isinstance(value, str) and value != "user" and "." not in value:
            problems.append(
                f"{where}['OPTIONS']['SCOPE'] = {value!r}; use None, 'user' or the dotted path of a "
                f"callable(request) -> str | None."
            )
        elif name == "REQUEST_DIRECTIVES" and isinstance(value, Mapping):
            problems += _request_directives_problems(where, value)
    return problems


def _request_directives_problems(where: str, value: Mapping[str, Any]) -> list[str]:
    header, permission = value.get("header"), value.get("permission")
    if (
        set(value) <= REQUEST_DIRECTIVES_KEYS
        and isinstance(header, str)
        and header.lower() not in ("", "cache-control")
        and isinstance(permission, (str, type(None)))
    ):
        return []
    return [
        f"{where}['OPTIONS']['REQUEST_DIRECTIVES'] = {value!r}; use "
        f"{{'header': 'LLM-Cache-Control', 'permission': 'llmcache_django.refresh_llm_cache'}} (permission "
        f"None: anyone may send directives); never Cache-Control, which browsers send on a reload."
    ]


def _store_problems(where: str, path: Any) -> list[str]:
    from llmcache_django.backends.registry import SpecError, named_spec

    try:
        named_spec(path)
    except SpecError as exc:
        return [
            f"{where}['OPTIONS']['STORE'] = {exc}; name a BackendSpec such as 'llmcache_django.backends.registry.DJANGO_REDIS'."
        ]
    return []


def _single_flight_problems(where: str, value: Any) -> list[str]:
    from llmcache_django.core.single_flight import option_problem

    problem = option_problem(value)
    return [] if problem is None else [f"{where}['OPTIONS']['SINGLE_FLIGHT'] = {problem}."]
