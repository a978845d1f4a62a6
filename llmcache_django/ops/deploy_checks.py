"""``manage.py check --deploy`` warnings for risky production settings (ids ``llmcache_django.W1xx``).

Only aliases that pass the regular checks are looked at: those report what is broken,
these what works but will hurt in production. LocMem and DummyCache aliases are already
warned about on every ``check`` (``W001``, ``W002``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Tags, Warning, register

from llmcache_django.conf import AliasSettings, alias_problems, app_settings


@register(Tags.caches, deploy=True)
def check_llm_caches_for_production(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn about ``LLM_CACHES`` settings that work but are risky in production."""
    aliases = valid_aliases()
    messages: list[CheckMessage] = []
    for settings in aliases:
        messages += ttl_warnings(settings)
        messages += stats_warnings(settings)
        messages += entry_size_warnings(settings)
        messages += timeout_warnings(settings)
        messages += culling_warnings(settings)
    return messages + shared_namespace_warnings(aliases)


def valid_aliases() -> list[AliasSettings]:
    """The aliases the regular checks find nothing wrong with."""
    config = app_settings.LLM_CACHES
    if not isinstance(config, Mapping):
        return []
    return [AliasSettings.of(alias, options) for alias, options in config.items() if not alias_problems(alias, options)]


def ttl_warnings(settings: AliasSettings) -> list[CheckMessage]:
    """``W101``: entries that never expire, on a backend where that piles up."""
    reason = settings.spec.never_expires
    if reason is None:
        return []
    if "TTL" in settings.options:
        ttl, source = settings.options["TTL"], f"{settings.where}['TTL'] is None"
    else:
        ttl = settings.cache.get("TIMEOUT", 300)
        source = f"{settings.where} sets no TTL and CACHES[{settings.cache_alias!r}]['TIMEOUT'] is None"
    if ttl is not None:
        return []
    return [
        Warning(
            f"{source}: LLM cache entries never expire; {reason}.",
            hint=f"Set {settings.where}['TTL'] to how many seconds an answer may be reused, e.g. 86400.",
            id="llmcache_django.W101",
        )
    ]


def stats_warnings(settings: AliasSettings) -> list[CheckMessage]:
    """``W102``: counting off while the admin, whose dashboard shows the counts, is installed."""
    if settings.feature_options.get("STATS", True) or not apps.is_installed("django.contrib.admin"):
        return []
    return [
        Warning(
            f"{settings.where}['OPTIONS']['STATS'] is False while django.contrib.admin is installed: the admin's "
            f"LLM cache dashboard, llm_cache_stats and the Prometheus counters show no hits, misses or savings for it.",
            hint=f"Remove 'STATS': False from {settings.where}['OPTIONS'] (counting costs about 4% of a Redis hit).",
            id="llmcache_django.W102",
        )
    ]


def entry_size_warnings(settings: AliasSettings) -> list[CheckMessage]:
    """``W103``: entries allowed to be larger than memcached stores by default."""
    limit = settings.feature_options.get("MAX_ENTRY_BYTES")
    item_bytes = settings.spec.max_item_bytes
    if item_bytes is None or limit is None or limit <= item_bytes:
        return []
    return [
        Warning(
            f"{settings.where}['OPTIONS']['MAX_ENTRY_BYTES'] = {limit} is more than memcached stores by default "
            f"(1 MiB items): larger entries are refused by the server, and each refusal is counted as an error.",
            hint=f"Lower it to at most {item_bytes}, or start every memcached of "
            f"CACHES[{settings.cache_alias!r}] with a larger -I (and silence llmcache_django.W103).",
            id="llmcache_django.W103",
        )
    ]


def timeout_warnings(settings: AliasSettings) -> list[CheckMessage]:
    """``W104``: server calls with no time bound at all."""
    option = settings.spec.timeout_option
    features = settings.feature_options
    if option is None or "SERVER_TIMEOUT" not in features or features["SERVER_TIMEOUT"] is not None:
        return []
    if settings.cache.get("OPTIONS", {}).get(option) is not None:
        return []
    return [
        Warning(
            f"{settings.where}['OPTIONS']['SERVER_TIMEOUT'] is None and CACHES[{settings.cache_alias!r}] sets no "
            f"{option!r}: a server that stops answering (paused, partitioned) holds every model call forever.",
            hint=f"Remove 'SERVER_TIMEOUT': None (the default bounds each call to 2 s), or set "
            f"CACHES[{settings.cache_alias!r}]['OPTIONS'][{option!r}].",
            id="llmcache_django.W104",
        )
    ]


def culling_warnings(settings: AliasSettings) -> list[CheckMessage]:
    """``W105``: a database or file cache left at Django's default of 300 entries."""
    if not settings.spec.culls or "MAX_ENTRIES" in settings.cache.get("OPTIONS", {}):
        return []
    return [
        Warning(
            f"{settings.where} uses CACHES[{settings.cache_alias!r}], which sets no OPTIONS['MAX_ENTRIES']: Django's "
            f"default of 300 applies, so past 300 keys a third of them are culled on a write and the hit ratio collapses.",
            hint=f"Set CACHES[{settings.cache_alias!r}]['OPTIONS']['MAX_ENTRIES'] to how many entries to keep, e.g. 100000.",
            id="llmcache_django.W105",
        )
    ]


def shared_namespace_warnings(aliases: list[AliasSettings]) -> list[CheckMessage]:
    """``W106``: two aliases whose entries live under the same keys."""
    groups: defaultdict[tuple[str, ...], list[str]] = defaultdict(list)
    for settings in aliases:
        if not settings.spec.stores_nothing:  # (and W001 says so)
            groups[storage_identity(settings)].append(settings.alias)
    return [
        Warning(
            f"LLM_CACHES {', '.join(repr(alias) for alias in sharing)} keep their entries under the same keys "
            f"(same server, KEY_PREFIX, VERSION and NAMESPACE): they serve each other's entries, share their "
            f"stats, and clearing one clears them all.",
            hint="Give each alias its own NAMESPACE.",
            id="llmcache_django.W106",
        )
        for sharing in groups.values()
        if len(sharing) > 1
    ]


def storage_identity(settings: AliasSettings) -> tuple[str, ...]:
    """What makes two aliases' keys the same: the server, KEY_PREFIX, VERSION and NAMESPACE."""
    cache = settings.cache
    return (
        settings.backend,
        repr(cache.get("LOCATION", "")),
        str(cache.get("KEY_PREFIX", "")),
        str(cache.get("VERSION", 1)),
        settings.namespace,
    )
