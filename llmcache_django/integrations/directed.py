"""Per-call directives from a LangChain config: ``config={"metadata": {"llm_cache": ...}}``.

A ``cached(...)`` model applies the directives of its call's config metadata (``"refresh"``,
``"no-store"``, ``"off"``, or ``{"max_age": ..., "ttl": ..., "scope": ...}``) around the call,
through :mod:`llmcache_django.core.control`; inside chains and graphs the metadata reaches
the model's call as it reaches its callbacks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import ensure_config

from llmcache_django.core.control import Directives, applied, from_metadata

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel

    _Base = BaseLanguageModel[Any]
else:
    _Base = object
#: The config metadata key of the directives.
METADATA_KEY = "llm_cache"


def metadata_directives(metadata: Any) -> Directives | None:
    """The directives in ``metadata`` (one mapping, or a batch's list of them: all alike)."""
    if isinstance(metadata, list):
        found = {repr(from_metadata(_value(item))): from_metadata(_value(item)) for item in metadata}
        if len(found) > 1:
            raise ValueError(f'config metadata "{METADATA_KEY}" differs within one batch; batch alike calls together.')
        return next(iter(found.values()), None)
    return from_metadata(_value(metadata))


def _value(metadata: Any) -> Any:
    return metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None


class ConfigDirected(_Base):
    """What ``cached()`` adds to a model: its calls follow their config's cache directives."""

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        with applied(metadata_directives(kwargs.get("metadata"))):
            return super().generate(*args, **kwargs)  # type: ignore[misc]

    async def agenerate(self, *args: Any, **kwargs: Any) -> Any:
        with applied(metadata_directives(kwargs.get("metadata"))):
            return await super().agenerate(*args, **kwargs)  # type: ignore[misc]

    def stream(self, input: Any, config: Any = None, **kwargs: Any) -> Iterator[Any]:
        given = metadata_directives(ensure_config(config).get("metadata"))  # raises here, not mid-stream
        chunks = super().stream(input, config, **kwargs)
        return chunks if given is None else _directed(chunks, given)

    def astream(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        given = metadata_directives(ensure_config(config).get("metadata"))
        chunks = super().astream(input, config, **kwargs)
        return chunks if given is None else _adirected(chunks, given)


def _directed(chunks: Iterator[Any], given: Directives) -> Iterator[Any]:
    """``chunks``, each step taken under ``given`` (and the consumer's code between steps not)."""
    try:
        while True:
            with applied(given):
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
            yield chunk
    finally:
        with applied(given):  # a stream given up early ends (and settles) under its directives
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


async def _adirected(chunks: AsyncIterator[Any], given: Directives) -> AsyncIterator[Any]:
    """Async :func:`_directed`."""
    try:
        while True:
            with applied(given):
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
            yield chunk
    finally:
        with applied(given):
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
