"""From Django's ``CACHES`` to LLM caches: the backend registry, ``llm_caches``, the public cache
classes, the langchain-community drop-ins and the clients derived from an alias."""
