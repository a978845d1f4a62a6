"""Is an alias's server answering? (see :mod:`llmcache_django.ops.health`)."""

from llmcache_django.ops.health import Health, ServerHealth, Status, probe

__all__ = ["Health", "ServerHealth", "Status", "probe"]
