"""A django-health-check (4.x) check per ``LLM_CACHES`` alias: reachable, degraded or down.

Usage, in ``urls.py``::

    from health_check.views import HealthCheckView
    from llmcache_django.ops.health_check import llm_cache_checks

    path("health/", HealthCheckView.as_view(checks=["health_check.Database", *llm_cache_checks()]))
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

try:
    from health_check.base import HealthCheck
    from health_check.exceptions import ServiceUnavailable, ServiceWarning
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without the extra
    raise ImportError(
        "llmcache_django.ops.health_check needs django-health-check: pip install 'llmcache-django[health]'"
    ) from exc

from llmcache_django.ops.health import DEFAULT_SLOW_SECONDS, Status, probe
from llmcache_django.stores.base import DEFAULT_SERVER_TIMEOUT


@dataclasses.dataclass
class LLMCacheCheck(HealthCheck):  # type: ignore[misc]
    """Check that ``LLM_CACHES[alias]``'s server answers: a warning when degraded, unavailable when down.

    Args:
        alias: The ``LLM_CACHES`` alias to probe.
        timeout: How long a server may take to answer before it counts as down.
        slow: An answer slower than this makes the alias degraded.
    """

    alias: str = "default"
    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=DEFAULT_SERVER_TIMEOUT), repr=False
    )
    slow: datetime.timedelta = dataclasses.field(default=datetime.timedelta(seconds=DEFAULT_SLOW_SECONDS), repr=False)

    def run(self) -> None:
        """Probe the alias; raise ``ServiceWarning`` when degraded, ``ServiceUnavailable`` when down."""
        health = probe(self.alias, timeout=self.timeout.total_seconds(), slow=self.slow.total_seconds())
        if health.status is Status.DOWN:
            raise ServiceUnavailable(health.detail)
        if health.status is Status.DEGRADED:
            raise ServiceWarning(health.detail)


def llm_cache_checks(*aliases: str, **options: Any) -> list[tuple[type[LLMCacheCheck], dict[str, Any]]]:
    """``HealthCheckView`` ``checks`` entries: one :class:`LLMCacheCheck` per alias (every ``LLM_CACHES`` alias by default)."""
    from llmcache_django.backends.handler import configured_aliases

    return [(LLMCacheCheck, {"alias": alias, **options}) for alias in aliases or configured_aliases()]
