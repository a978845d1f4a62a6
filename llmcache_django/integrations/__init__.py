"""LangChain-facing additions composed over the cache: ``cached(model)`` and stream replay."""
