"""Embeddings caching on any ``LLM_CACHES`` alias: ``cached_embeddings(model)``.

A batch of texts is looked up in one round trip; the wrapped model is asked once, for the
texts it lacks; vectors are stored packed (float32 by default), under a key made of the
model's identity and the SHA-256 of the text, so two models never share a vector.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from hashlib import sha256
from typing import Any, Literal

from langchain_core.embeddings import Embeddings

from llmcache_django.core.cache import LLMCache
from llmcache_django.integrations.side_cache import SideCache, SideCacheBinding
from llmcache_django.integrations.vectors import DTYPES, decode_vector, encode_vector

__all__ = ["CachedEmbeddings", "cached_embeddings", "decode_vector", "encode_vector", "model_identity"]

#: The sub-namespace of the LLM cache's store that vectors live in.
KIND = "embeddings"
#: Attributes of an embeddings model that change the vectors it returns (never credentials).
IDENTITY_FIELDS = (
    "model",
    "model_name",
    "model_id",
    "deployment",
    "deployment_name",
    "dimensions",
    "dimension",
    "size",
    "encoding_format",
    "task_type",
    "input_type",
    "normalize",
    "truncate",
    "query_instruction",
    "embed_instruction",
)
_NAME_TAG = b"llmcache-embeddings-v1\x00"


def cached_embeddings(
    embeddings: Embeddings,
    alias: str | None = None,
    *,
    cache: LLMCache | None = None,
    queries: bool = True,
    dtype: Literal["float32", "float64"] = "float32",
    identity: str | None = None,
) -> CachedEmbeddings:
    """``embeddings`` with its vectors cached on the ``LLM_CACHES`` alias (or ``cache``).

    ``queries=False`` leaves ``embed_query`` uncached; ``identity`` replaces the model
    identity derived from its class and settings (see :data:`IDENTITY_FIELDS`).
    """
    binding = SideCacheBinding(KIND, alias, cache)
    return CachedEmbeddings(embeddings, binding, queries=queries, dtype=dtype, identity=identity)


def model_identity(embeddings: Embeddings) -> str:
    """The class of ``embeddings`` and every setting of it that changes its vectors, as JSON."""
    cls = type(embeddings)
    identity: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    for field in IDENTITY_FIELDS:
        value = getattr(embeddings, field, None)
        if isinstance(value, str | int | float | bool):
            identity[field] = value
    return json.dumps(identity, sort_keys=True, separators=(",", ":"))


class CachedEmbeddings(Embeddings):
    """An ``Embeddings`` that serves the vectors it has stored and asks the wrapped model for the rest.

    Server errors are misses and skipped writes (logged and counted); a stored value that is
    not a vector of this model's dimensions is a miss, never a wrong vector.
    """

    def __init__(
        self,
        embeddings: Embeddings,
        binding: SideCacheBinding,
        *,
        queries: bool = True,
        dtype: Literal["float32", "float64"] = "float32",
        identity: str | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r}: use one of {', '.join(DTYPES)}")
        self.embeddings = embeddings
        self._binding = binding
        self.queries = queries
        self.dtype = dtype
        self.identity = identity if identity is not None else model_identity(embeddings)
        #: The model's dimensions, once it has returned a vector in this process.
        self.dimensions: int | None = None

    @property
    def side(self) -> SideCache:
        """Where the vectors are: beside the alias's current LLM cache (or the given cache)."""
        return self._binding()

    def __repr__(self) -> str:
        return f"<CachedEmbeddings {self.identity} {self.side.store.describe()}>"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """The vectors of ``texts``, in order: stored ones served, the others embedded in one call."""
        return self._embed(texts, "document", self.embeddings.embed_documents)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`."""
        return await self._aembed(texts, "document", self.embeddings.aembed_documents)

    def embed_query(self, text: str) -> list[float]:
        """The vector of the query ``text`` (cached unless ``queries=False``)."""
        if not self.queries:
            return self.embeddings.embed_query(text)
        return self._embed([text], "query", lambda texts: [self.embeddings.embed_query(texts[0])])[0]

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        if not self.queries:
            return await self.embeddings.aembed_query(text)

        async def embed(texts: list[str]) -> list[list[float]]:
            return [await self.embeddings.aembed_query(texts[0])]

        return (await self._aembed([text], "query", embed))[0]

    def _embed(
        self, texts: Sequence[str], role: str, embed: Callable[[list[str]], list[list[float]]]
    ) -> list[list[float]]:
        names = self._names(texts, role)
        side = self.side
        if not names:
            return []
        found = side.attempt("lookup", side.store.get_many, list(dict.fromkeys(names))) or {}
        batch = _Batch(texts, names, self._served(names, found))
        while batch.missing:
            self._take(batch, embed(list(batch.missing.values())))
        if (
            batch.fresh
            and not side.caches_nothing
            and side.write(side.store.set_many, self._encoded(batch.fresh, role), side.ttl)
        ):
            side.count("writes", len(batch.fresh))
        side.flush_due_stats()
        return batch.ordered()

    async def _aembed(
        self, texts: Sequence[str], role: str, embed: Callable[[list[str]], Awaitable[list[list[float]]]]
    ) -> list[list[float]]:
        names = self._names(texts, role)
        side = self.side
        if not names:
            return []
        found = await side.aattempt("lookup", side.store.aget_many, list(dict.fromkeys(names))) or {}
        batch = _Batch(texts, names, self._served(names, found))
        while batch.missing:
            self._take(batch, await embed(list(batch.missing.values())))
        if (
            batch.fresh
            and not side.caches_nothing
            and await side.awrite(side.store.aset_many, self._encoded(batch.fresh, role), side.ttl)
        ):
            side.count("writes", len(batch.fresh))
        await side.aflush_due_stats()
        return batch.ordered()

    def clear(self) -> int | None:
        """Remove every stored vector of this alias (every model's), and nothing else."""
        return self.side.clear()

    def _names(self, texts: Sequence[str], role: str) -> list[str]:
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a list of str, not {type(texts).__name__}")
        prefix = _NAME_TAG + self.identity.encode() + b"\x00" + role.encode() + b"\x00"
        names = []
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] is a {type(text).__name__}, not a str")
            names.append(sha256(prefix + text.encode("utf-8", "surrogatepass")).hexdigest())
        return names

    def _served(self, names: Sequence[str], found: dict[str, bytes]) -> dict[str, list[float]]:
        """The stored vectors that are vectors of this model (others count as errors and misses)."""
        decoded: dict[str, list[float]] = {}
        for name, value in found.items():
            try:
                decoded[name] = decode_vector(value)
            except ValueError as exc:
                self._bad_value(exc)
        expected = self.dimensions or _most_common_length(decoded.values())
        served = {}
        for name, vector in decoded.items():
            if len(vector) == expected:
                served[name] = vector
            else:
                self._bad_value(ValueError(f"a stored vector has {len(vector)} dimensions, not {expected}"))
        self.side.count("hits", sum(1 for name in names if name in served))
        if self.side.stats is not None:
            self.side.count("bytes_served", sum(len(found[name]) for name in served))
        return served

    def _take(self, batch: _Batch, fresh: list[list[float]]) -> None:
        """Add the model's vectors for ``batch.missing``; served vectors of other dimensions
        (planted before this process knew the model's) become missing again."""
        if len(fresh) != len(batch.missing):
            raise ValueError(f"the embeddings model returned {len(fresh)} vectors for {len(batch.missing)} texts")
        self.side.count("misses", len(batch.missing))
        if fresh:
            self.dimensions = len(fresh[0])
        batch.fresh.update(zip(batch.missing, (list(vector) for vector in fresh), strict=True))
        batch.missing = {}
        for name, text in zip(batch.names, batch.texts, strict=True):
            vector = batch.served.get(name)
            if vector is not None and len(vector) != self.dimensions:
                del batch.served[name]
                batch.missing[name] = text
                self._bad_value(ValueError(f"a stored vector has {len(vector)} dimensions, not {self.dimensions}"))

    def _encoded(self, vectors: dict[str, list[float]], role: str) -> dict[str, bytes]:
        return {
            name: encode_vector(vector, self.dtype, identity=self.identity, role=role)
            for name, vector in vectors.items()
        }

    def _bad_value(self, exc: Exception) -> None:
        self.side.count("errors")
        self.side.errors.report("reading a stored vector", exc)


class _Batch:
    """One call's texts: the vectors served from the store, those the model made, those still missing."""

    def __init__(self, texts: Sequence[str], names: list[str], served: dict[str, list[float]]) -> None:
        self.texts = texts
        self.names = names
        self.served = served
        self.fresh: dict[str, list[float]] = {}
        #: ``name: text`` of the texts without a vector, each once, in order.
        self.missing = {name: text for name, text in zip(names, texts, strict=True) if name not in served}

    def ordered(self) -> list[list[float]]:
        return [self.fresh[name] if name in self.fresh else self.served[name] for name in self.names]


def _most_common_length(vectors: Any) -> int | None:
    lengths = Counter(len(vector) for vector in vectors)
    return lengths.most_common(1)[0][0] if lengths else None
