"""Thin adapters that store an entry's bytes on one kind of server."""

from llmcache_django.stores.base import Store

__all__ = ["Store"]
