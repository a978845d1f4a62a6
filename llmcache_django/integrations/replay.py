"""A stream through the cache: a hit replayed as chunks, a miss recorded, and the hit marker.

The marker (``response_metadata["llm_cache"]``) is added to what the caller receives only:
:class:`HitMarkingCache` forwards every write to the LLM cache unchanged and marks copies
of what a lookup returns, so entries and plain ``BaseCache.lookup`` results never carry it.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, Generation, GenerationChunk

from llmcache_django.core import control
from llmcache_django.core.cache import LLMCache, Lookup
from llmcache_django.core.flight_owners import StreamLead

#: The chunks the next ``_stream``/``_astream`` call of a cached model replays instead of
#: asking the model; set only for the one step of ``stream()`` that makes that call.
_replay: ContextVar[list[Iterable[Any]] | None] = ContextVar("llmcache_django_replay", default=None)
#: The ``(prompt, llm_string)`` a cached model has just looked up and missed: LangChain's own
#: lookup of it, in the ``invoke`` that follows, is answered "miss" without a second lookup.
_looked_up: ContextVar[list[tuple[str, str]] | None] = ContextVar("llmcache_django_looked_up", default=None)
#: What the last lookup through a :class:`HitMarkingCache` in this context did, when it
#: found nothing because of a directive (``refreshed``, ``stale``, ``bypassed``): said by the
#: marker of the answer the model then gives.
_outcome: ContextVar[str | None] = ContextVar("llmcache_django_outcome", default=None)
#: The scope the last lookup through a :class:`HitMarkingCache` in this context was made in
#: (``None``: unscoped): the marker names it, for a hit and for the answer then stored.
_scope: ContextVar[str | None] = ContextVar("llmcache_django_scope", default=None)
#: Outcomes of a lookup that found nothing that the miss marker names.
MARKED_OUTCOMES = frozenset({"refreshed", "stale", "bypassed"})
#: The ``response_metadata`` key of the hit marker.
MARKER_KEY = "llm_cache"
#: A replayed answer comes in pieces of about this many characters (~8 tokens), cut after
#: whitespace where there is some: small enough to render as a stream, few enough chunks
#: (and callbacks) that a long answer replays in milliseconds.
REPLAY_CHUNK_CHARS = 32
logger = logging.getLogger("llmcache_django")
_PIECE = re.compile(rf".{{1,{REPLAY_CHUNK_CHARS}}}(?:\s+|$)|.{{{REPLAY_CHUNK_CHARS}}}", re.DOTALL)


class HitMarkingCache(BaseCache):
    """An LLM cache as a ``cached(...)`` model sees it: hits come back marked as hits."""

    def __init__(self, *, alias: str | None = None, cache: LLMCache | None = None) -> None:
        self._alias = alias
        self._cache = cache

    def __repr__(self) -> str:
        return (
            f"<HitMarkingCache of {self._cache!r}>"
            if self._cache is not None
            else f"<HitMarkingCache of alias {self._alias!r}>"
        )

    @property
    def target(self) -> LLMCache:
        """The LLM cache entries are read from and written to (resolved on each call)."""
        if self._cache is not None:
            return self._cache
        from llmcache_django.backends.handler import llm_caches

        return llm_caches[self._alias or "default"]

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached generations, chat messages marked as a hit, or ``None``."""
        if _just_missed(prompt, llm_string):
            return None
        target = self.target
        return _marked_lookup(target, target.lookup_outcome(prompt, llm_string))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Async :meth:`lookup`."""
        if _just_missed(prompt, llm_string):
            return None
        target = self.target
        return _marked_lookup(target, await target.alookup_outcome(prompt, llm_string))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store ``return_val`` as it is."""
        self.target.update(prompt, llm_string, return_val)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Async :meth:`update`."""
        await self.target.aupdate(prompt, llm_string, return_val)

    def clear(self, **kwargs: Any) -> None:
        """Clear the LLM cache's namespace."""
        self.target.clear(**kwargs)

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`."""
        await self.target.aclear(**kwargs)

    def miss_marker(self) -> dict[str, Any]:
        """The marker of an answer the model just gave; ``"unavailable": True`` when the
        cache is leaving an unreachable server alone (the answer was not stored)."""
        target = self.target
        marker: dict[str, Any] = {"hit": False, "alias": target.alias or None}
        outcome = _outcome.get()
        if outcome is not None:
            marker[outcome] = True  # "refreshed": True, "stale": True or "bypassed": True
        if _scope.get() is not None:
            marker["scope"] = _scope.get()
        if time.monotonic() < target.store.paused_until:
            marker["unavailable"] = True
        return marker

    def marked_misses(self, result: ChatResult) -> ChatResult:
        """``result`` with every generation not marked as a hit marked as a miss."""
        unmarked = [g for g in result.generations if MARKER_KEY not in g.message.response_metadata]
        if not unmarked:
            return result
        marker = self.miss_marker()
        generations = [_marked_generation(g, marker) if g in unmarked else g for g in result.generations]
        return ChatResult(generations=generations, llm_output=result.llm_output)


def _marked_lookup(cache: LLMCache, found: Lookup) -> RETURN_VAL_TYPE | None:
    """What a marking lookup returns for ``found``; remembers why it found nothing, for the marker."""
    _outcome.set(found.outcome if found.outcome in MARKED_OUTCOMES else None)
    given = control.current_for(cache.alias)
    scope = given.scope if given is not None else None
    _scope.set(scope)
    entry = found.entry
    return None if entry is None else marked(entry.generations, hit_marker(cache, entry.created, scope))


def hit_marker(cache: LLMCache, created: float, scope: str | None = None) -> dict[str, Any]:
    """The marker of an answer served by ``cache`` from ``scope``, stored at ``created`` (epoch seconds)."""
    marker = {"hit": True, "alias": cache.alias or None, "age_s": round(max(0.0, time.time() - created), 3)}
    return marker if scope is None else {**marker, "scope": scope}


def marked(generations: Sequence[Generation], marker: dict[str, Any]) -> list[Generation]:
    """Copies of ``generations`` whose chat messages carry ``marker``."""
    return [_marked_generation(g, marker) if isinstance(g, ChatGeneration) else g for g in generations]


def with_marker(message: BaseMessage, marker: dict[str, Any]) -> Any:
    """A copy of ``message`` carrying ``marker`` in its ``response_metadata``."""
    return message.model_copy(update={"response_metadata": {**message.response_metadata, MARKER_KEY: marker}})


def without_markers(messages: Iterable[BaseMessage]) -> list[BaseMessage]:
    """``messages`` with the marker taken off earlier answers, so a conversation that
    includes a cached answer has the same cache key as one that includes a live one."""
    return [_unmarked(message) if MARKER_KEY in message.response_metadata else message for message in messages]


def message_chunks(
    message: BaseMessage, generation_info: dict[str, Any] | None = None
) -> Iterator[ChatGenerationChunk]:
    """A stored chat answer as the chunks a stream of it yields: content in pieces, then a
    last chunk with the tool calls, usage and metadata, so the chunks add up to ``message``.
    Each chunk is built when it is asked for, so the first one comes at once."""
    content = message.content
    pieces: Iterable[Any] = text_pieces(content) if isinstance(content, str) else ([block] for block in content)
    for piece in pieces:
        yield ChatGenerationChunk(message=AIMessageChunk(content=piece, id=message.id))
    yield ChatGenerationChunk(message=_last_chunk(message), generation_info=generation_info)


def text_chunks(generation: Generation) -> list[GenerationChunk]:
    """A stored text answer as the chunks a stream of it yields."""
    chunks = [GenerationChunk(text=piece) for piece in text_pieces(generation.text)] or [GenerationChunk(text="")]
    chunks[-1] = GenerationChunk(text=chunks[-1].text, generation_info=generation.generation_info)
    return chunks


def text_pieces(text: str) -> Iterator[str]:
    """``text`` cut into pieces of at most :data:`REPLAY_CHUNK_CHARS` characters."""
    return (match.group() for match in _PIECE.finditer(text) if match.group())


async def aiterate(chunks: Iterable[Any]) -> AsyncIterator[Any]:
    """``chunks`` as an async iterator."""
    for chunk in chunks:
        yield chunk


def _last_chunk(message: BaseMessage) -> AIMessageChunk:
    ai = message if isinstance(message, AIMessage) else None
    return AIMessageChunk(
        content="" if isinstance(message.content, str) else [],
        id=message.id,
        additional_kwargs=message.additional_kwargs,
        response_metadata=message.response_metadata,
        tool_calls=ai.tool_calls if ai else [],
        invalid_tool_calls=ai.invalid_tool_calls if ai else [],
        usage_metadata=ai.usage_metadata if ai else None,
        chunk_position="last",
    )


def _marked_generation(generation: Generation, marker: dict[str, Any]) -> ChatGeneration:
    assert isinstance(generation, ChatGeneration)
    return ChatGeneration(message=with_marker(generation.message, marker), generation_info=generation.generation_info)


def _unmarked(message: BaseMessage) -> BaseMessage:
    metadata = {key: value for key, value in message.response_metadata.items() if key != MARKER_KEY}
    return message.model_copy(update={"response_metadata": metadata})


@contextmanager
def missed(prompt: str, llm_string: str) -> Iterator[None]:
    """Within this block, a lookup of ``(prompt, llm_string)`` through a
    :class:`HitMarkingCache` is a miss without asking the server (it was just asked)."""
    token = _looked_up.set([(prompt, llm_string)])
    try:
        yield
    finally:
        _looked_up.reset(token)


def _just_missed(prompt: str, llm_string: str) -> bool:
    """Whether ``(prompt, llm_string)`` was just looked up and missed (answered once)."""
    holder = _looked_up.get()
    if holder and holder[-1] == (prompt, llm_string):
        holder.pop()
        return True
    return False


@contextmanager
def _replaying(chunks: Iterable[Any]) -> Iterator[None]:
    token = _replay.set([chunks])
    try:
        yield
    finally:
        _replay.reset(token)


def take_replay() -> Iterable[Any] | None:
    """The chunks to replay instead of asking the model, once; ``None`` when not replaying."""
    holder = _replay.get()
    return holder.pop() if holder else None


def replayed(live: Iterator[Any], chunks: Iterable[Any]) -> Iterator[Any]:
    """The model's own ``stream()`` (``live``, not started yet) yielding ``chunks``."""
    # The model's own stream() starts the run and calls _stream() within its first step.
    with _replaying(chunks):
        first = next(live)
    yield first
    yield from live


async def areplayed(live: AsyncIterator[Any], chunks: Iterable[Any]) -> AsyncIterator[Any]:
    """Async :func:`replayed`."""
    with _replaying(chunks):
        first = await live.__anext__()
    yield first
    async for chunk in live:
        yield chunk


def recorded(
    live: Iterator[AIMessageChunk], marking: HitMarkingCache, prompt: str, llm_string: str, lead: StreamLead
) -> Iterator[AIMessageChunk]:
    """``live``'s chunks; once it completed, the answer is stored and the last chunk,
    held back until then, carries the miss marker. ``lead`` is parked while its reader
    holds a chunk."""
    chunks: list[AIMessageChunk] = []
    with abandoned_on_failure(marking, prompt, llm_string):
        for chunk in live:
            if chunks and chunks[-1].chunk_position == "last":
                lead.park()
                yield chunks[-1]
                lead.resume()
            chunks.append(chunk)
            if chunk.chunk_position != "last":
                lead.park()
                yield chunk
                lead.resume()
    if chunks:
        store(marking, prompt, llm_string, _chat_generations(chunks))
        yield _final_chunk(chunks, marking.miss_marker())
    else:
        marking.target.abandon(prompt, llm_string)


async def arecorded(
    live: AsyncIterator[AIMessageChunk], marking: HitMarkingCache, prompt: str, llm_string: str, lead: StreamLead
) -> AsyncIterator[AIMessageChunk]:
    """Async :func:`recorded`."""
    chunks: list[AIMessageChunk] = []
    async with aabandoned_on_failure(marking, prompt, llm_string):
        async for chunk in live:
            if chunks and chunks[-1].chunk_position == "last":
                lead.park()
                yield chunks[-1]
                lead.resume()
            chunks.append(chunk)
            if chunk.chunk_position != "last":
                lead.park()
                yield chunk
                lead.resume()
    if chunks:
        await astore(marking, prompt, llm_string, _chat_generations(chunks))
        yield _final_chunk(chunks, marking.miss_marker())
    else:
        await marking.target.aabandon(prompt, llm_string)


def _chat_generations(chunks: list[AIMessageChunk]) -> list[Generation] | None:
    """The generations ``invoke()`` would have stored for this streamed answer (as
    ``generate_from_stream`` builds them)."""
    try:
        return [ChatGeneration(message=message_chunk_to_message(aggregate(chunks)))]
    except Exception as exc:  # an answer that cannot be aggregated is not cached; the stream goes on
        logger.warning("LLM cache: could not record a streamed answer: %s: %s", type(exc).__name__, exc)
        return None


def aggregate(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    """``chunks[0] + chunks[1:]``: ``AIMessageChunk`` addition, with each run of chunks that
    carry text only (the stream's id, nothing else) joined first. That adds up to the same
    message without merging the metadata of every token."""
    run_id = chunks[0].id
    folded: list[AIMessageChunk] = []
    for text_only, group in itertools.groupby(chunks, key=lambda chunk: _text_only(chunk, run_id)):
        if text_only:
            folded.append(AIMessageChunk(content="".join([chunk.content for chunk in group]), id=run_id))  # type: ignore[misc]
        else:
            folded.extend(group)
    return folded[0] + folded[1:] if len(folded) > 1 else folded[0]


def _text_only(chunk: AIMessageChunk, run_id: str | None) -> bool:
    return (
        chunk.id == run_id
        and chunk.chunk_position is None
        and type(chunk.content) is str
        and not (chunk.response_metadata or chunk.tool_call_chunks or chunk.additional_kwargs)
        and chunk.usage_metadata is None
        and chunk.name is None
        and type(chunk) is AIMessageChunk
    )


def _final_chunk(chunks: list[AIMessageChunk], marker: dict[str, Any]) -> AIMessageChunk:
    last = chunks[-1]
    if last.chunk_position == "last":
        return with_marker(last, marker)  # type: ignore[no-any-return]
    empty: Any = "" if isinstance(last.content, str) else []
    return AIMessageChunk(content=empty, id=last.id, response_metadata={MARKER_KEY: marker})


@contextmanager
def abandoned_on_failure(marking: HitMarkingCache, prompt: str, llm_string: str) -> Iterator[None]:
    """Tell single-flight waiters at once when a recorded stream raises or is closed early."""
    try:
        yield
    except BaseException:
        marking.target.abandon(prompt, llm_string)
        raise


@asynccontextmanager
async def aabandoned_on_failure(marking: HitMarkingCache, prompt: str, llm_string: str) -> AsyncIterator[None]:
    """Async :func:`abandoned_on_failure`."""
    try:
        yield
    except BaseException:
        await marking.target.aabandon(prompt, llm_string)
        raise


def store(marking: HitMarkingCache, prompt: str, llm_string: str, generations: list[Generation] | None) -> None:
    """Store ``generations``; when recording them failed (``None``), tell single-flight
    waiters at once that no entry is coming."""
    if generations is not None:
        marking.update(prompt, llm_string, generations)  # fail-open: LLMCache.update never raises
    else:
        marking.target.abandon(prompt, llm_string)


async def astore(marking: HitMarkingCache, prompt: str, llm_string: str, generations: list[Generation] | None) -> None:
    """Async :func:`store`."""
    if generations is not None:
        await marking.aupdate(prompt, llm_string, generations)
    else:
        await marking.target.aabandon(prompt, llm_string)
