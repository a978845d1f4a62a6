"""Signals sent by every LLM cache; nothing is computed when no receiver is connected.

Each is sent with ``sender`` = the cache instance and keyword arguments ``alias``,
``prompt`` (as the entry stores it: a chat prompt in its canonical form, see
:func:`llmcache_django.core.keys.canonical_prompt`) and ``llm_string`` (``llm_cache_cleared``:
``alias`` and ``count``, the number of entries removed, or ``None`` where the backend
cannot count them).
"""

from __future__ import annotations

from django.dispatch import Signal

llm_cache_hit = Signal()
llm_cache_miss = Signal()
llm_cache_cleared = Signal()
