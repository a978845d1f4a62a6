"""Views of the "LLM cache" admin section; each takes the model admin, then the request."""

from __future__ import annotations

from llmcache_django.admin_views.clear import clear, delete_entry
from llmcache_django.admin_views.dashboard import dashboard
from llmcache_django.admin_views.entries import entry_detail, entry_list

__all__ = ["clear", "dashboard", "delete_entry", "entry_detail", "entry_list"]
