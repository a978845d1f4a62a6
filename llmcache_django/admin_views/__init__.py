"""Views of the "LLM cache" admin section; each takes the model admin, then the request."""

from __future__ import annotations

from llmcache_django.admin_views.clear import clear, delete_entry, reset_stats
from llmcache_django.admin_views.common import ServerUnavailable
from llmcache_django.admin_views.dashboard import dashboard
from llmcache_django.admin_views.entries import entry_detail, entry_list
from llmcache_django.admin_views.kind_entries import kind_clear, kind_entry_list
from llmcache_django.admin_views.unavailable import unavailable

__all__ = [
    "ServerUnavailable",
    "clear",
    "dashboard",
    "delete_entry",
    "entry_detail",
    "entry_list",
    "kind_clear",
    "kind_entry_list",
    "reset_stats",
    "unavailable",
]
