"""A runnable Django site that shows llmcache_django caching a chat model."""
