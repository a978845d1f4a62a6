"""The LLM cache itself: lookup/update/clear over any store, keys, the codec, stats, fail-open, single-flight.

Imports only :mod:`llmcache_django.stores` (the store contract) beneath it; reads no Django settings.
"""
