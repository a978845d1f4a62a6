"""``cached(model)``: a model of the same kind whose streams are cached too.

LangChain's ``stream()``/``astream()`` never consult the cache. ``cached(model)`` returns a
copy of ``model`` whose class is a subclass of the model's own, adding: a stream looks the
answer up under the key ``invoke`` would use (so one entry serves both), replays a hit as
chunks through the model's own ``stream()`` (callbacks and tracing as for a live stream),
and records a miss once the stream completes. A stream that raises, is cancelled or is
abandoned stores nothing, and the cache never breaks the stream (it is fail-open).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast
from uuid import UUID

from langchain_core.caches import BaseCache
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLanguageModel, BaseLLM
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.llms import aget_prompts, get_prompts
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, Generation
from langchain_core.utils.utils import LC_ID_PREFIX

from llmcache_django.backends.handler import DefaultLLMCache
from llmcache_django.core.cache import LLMCache
from llmcache_django.core.flight_owners import StreamLead
from llmcache_django.integrations.directed import ConfigDirected
from llmcache_django.integrations.replay import (
    HitMarkingCache,
    aabandoned_on_failure,
    abandoned_on_failure,
    aiterate,
    arecorded,
    areplayed,
    astore,
    message_chunks,
    missed,
    recorded,
    replayed,
    store,
    take_replay,
    text_chunks,
    without_markers,
)

ModelT = TypeVar("ModelT", bound=BaseLanguageModel[Any])
#: Keyword arguments that ``generate()`` and ``stream()`` take off before the model (and
#: the cache key) sees the rest.
TRACING_KWARGS = ("ls_structured_output_format", "structured_output_format")

#: model class -> its cached_class(); built once per class (pydantic builds a schema).
_subclasses: dict[type[Any], type[Any]] = {}

if TYPE_CHECKING:
    _ChatBase = BaseChatModel
    _LLMBase = BaseLLM
else:
    _ChatBase = _LLMBase = object


def cached(model: ModelT, *, alias: str | None = None, cache: LLMCache | None = None) -> ModelT:
    """``model`` whose ``invoke``, ``stream`` and ``astream`` go through an LLM cache.

    The cache is ``cache``, else ``llm_caches[alias]``, else the model's own ``cache`` if
    it is an LLM cache of ours, else ``llm_caches["default"]``. The result caches even when
    ``model.cache`` is ``False``: asking for ``cached(model)`` is asking for a cache.
    ``model`` itself is not changed.
    """
    if not isinstance(model, (BaseChatModel, BaseLLM)):
        raise TypeError(f"cached() takes a BaseChatModel or BaseLLM, not {type(model).__name__}.")
    marking = HitMarkingCache(alias=alias, cache=cache) if alias or cache is not None else _own_cache(model)
    copy = model.model_copy(update={"cache": marking})
    object.__setattr__(copy, "__class__", cached_class(type(model)))
    return cast(ModelT, copy)


def _own_cache(model: BaseLanguageModel[Any]) -> HitMarkingCache:
    own = model.cache
    if isinstance(own, HitMarkingCache):
        return own
    if isinstance(own, LLMCache):
        return HitMarkingCache(cache=own)
    if isinstance(own, BaseCache) and not isinstance(own, DefaultLLMCache):
        raise TypeError(
            f"{type(model).__name__}.cache is a {type(own).__name__}; cached() reads and writes llmcache_django "
            f"caches only: pass cache=<an LLMCache> or alias=<an LLM_CACHES alias>."
        )
    return HitMarkingCache(alias="default")


def cached_class(model_class: type[Any]) -> type[Any]:
    """The subclass of ``model_class`` that ``cached()`` gives its copies.

    It keeps the model's name and module, so serialization, tracing and the ``llm_string``
    (hence the cache key) are the model's own. ``_stream``/``_astream`` are overridden only
    where the model implements them, so a model that cannot stream still falls back to
    ``invoke`` exactly as before.
    """
    original: type[Any] = getattr(model_class, "cached_model_class", model_class)
    subclass = _subclasses.get(original)
    if subclass is None:
        subclass = _subclasses.setdefault(original, _subclass(original))
    return subclass


def _subclass(model_class: type[Any]) -> type[Any]:
    if issubclass(model_class, BaseChatModel):
        bases: list[type] = [ConfigDirected, ChatStreamCache]
        streams_sync = model_class._stream is not BaseChatModel._stream
        streams_async = streams_sync or model_class._astream is not BaseChatModel._astream
    else:
        bases = [ConfigDirected, LLMStreamCache]
        streams_sync = model_class._stream is not BaseLLM._stream
        streams_async = streams_sync or model_class._astream is not BaseLLM._astream
    bases += [ReplaysSync] if streams_sync else []
    bases += [ReplaysAsync] if streams_async else []
    namespace = {
        "__module__": model_class.__module__,
        "__qualname__": model_class.__qualname__,
        "__doc__": f"{model_class.__name__} whose streams are cached (made by llmcache_django.cached).",
        "cached_model_class": model_class,
        "__annotations__": {"cached_model_class": ClassVar[type]},
    }
    return type(model_class.__name__, (*bases, model_class), namespace)


class ReplaysSync:
    """``_stream`` yields the replayed chunks when ``stream()`` replays a hit."""

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        chunks = take_replay()
        return iter(chunks) if chunks is not None else super()._stream(*args, **kwargs)  # type: ignore[misc]


class ReplaysAsync:
    """``_astream`` yields the replayed chunks when ``astream()`` replays a hit."""

    def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        chunks = take_replay()
        return aiterate(chunks) if chunks is not None else super()._astream(*args, **kwargs)  # type: ignore[misc]


class ChatStreamCache(_ChatBase):
    """What ``cached()`` adds to a chat model: cached streams and the hit marker."""

    def stream(self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any) -> Iterator[Any]:
        if not self._should_stream(async_api=False, **{**kwargs, "stream": True}):
            yield from super().stream(input, config, stop=stop, **kwargs)  # invoke(): cached there
            return
        messages = without_markers(self._convert_input(input).to_messages())
        prompt, llm_string = self._cache_key(messages, stop, kwargs)
        marking = _marking(self)
        lead = StreamLead()
        with lead.looking_up():
            hit = marking.lookup(prompt, llm_string)
        live = super().stream(messages, config, stop=stop, **kwargs)
        if hit:
            yield from replayed(live, self._replay_chunks(list(hit)))
            return
        yield from recorded(live, marking, prompt, llm_string, lead)

    async def astream(
        self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        if not self._should_stream(async_api=True, **{**kwargs, "stream": True}):
            async for chunk in super().astream(input, config, stop=stop, **kwargs):
                yield chunk
            return
        messages = without_markers(self._convert_input(input).to_messages())
        prompt, llm_string = self._cache_key(messages, stop, kwargs)
        marking = _marking(self)
        lead = StreamLead()
        with lead.looking_up():
            hit = await marking.alookup(prompt, llm_string)
        live = super().astream(messages, config, stop=stop, **kwargs)
        if hit:
            async for chunk in areplayed(live, self._replay_chunks(list(hit))):
                yield chunk
            return
        async for chunk in arecorded(live, marking, prompt, llm_string, lead):
            yield chunk

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        messages = without_markers(messages)
        marking = _marking(self)
        if run_manager is None or not self._streams_to_handlers(run_manager, async_api=False, **kwargs):
            result = super()._generate_with_cache(messages, stop, run_manager, **kwargs)
            return marking.marked_misses(result)
        # A streaming callback handler listens (LangGraph's stream_mode="messages",
        # astream_events): a hit reaches it in pieces, as a live answer would.
        prompt, llm_string = self._cache_key(messages, stop, kwargs)
        hit = marking.lookup(prompt, llm_string)
        if hit:
            result, chunks = self._replay_result(list(hit), run_manager.run_id)
            for chunk in chunks:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            return result
        with missed(prompt, llm_string):  # LangChain's own lookup need not ask the server again
            result = super()._generate_with_cache(messages, stop, run_manager, **kwargs)
        return marking.marked_misses(result)

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        messages = without_markers(messages)
        marking = _marking(self)
        if run_manager is None or not self._streams_to_handlers(run_manager, async_api=True, **kwargs):
            result = await super()._agenerate_with_cache(messages, stop, run_manager, **kwargs)
            return marking.marked_misses(result)
        prompt, llm_string = self._cache_key(messages, stop, kwargs)
        hit = await marking.alookup(prompt, llm_string)
        if hit:
            result, chunks = self._replay_result(list(hit), run_manager.run_id)
            for chunk in chunks:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            return result
        with missed(prompt, llm_string):
            result = await super()._agenerate_with_cache(messages, stop, run_manager, **kwargs)
        return marking.marked_misses(result)

    def _streams_to_handlers(self, run_manager: Any, *, async_api: bool, **kwargs: Any) -> bool:
        """Whether ``invoke`` streams a live answer to callback handlers (``on_llm_new_token``).

        The v2 protocol (``on_stream_event``, langchain-core >= 1.8) is left to
        langchain-core, which replays hits on it itself."""
        if not self._should_stream(async_api=async_api, run_manager=run_manager, **kwargs):
            return False
        protocol = getattr(self, "_should_use_protocol_streaming", None)
        return protocol is None or not protocol(async_api=async_api, run_manager=run_manager, **kwargs)

    def _replay_result(
        self, generations: list[Generation], run_id: UUID
    ) -> tuple[ChatResult, Iterator[ChatGenerationChunk]]:
        """What ``invoke`` returns for a hit (as langchain-core returns it: the cost zeroed)
        and the chunks a live stream of its answer would have given the handlers. Both carry
        this run's message id, as a live answer does, so handlers that drop a message id they
        have seen (LangGraph's) take the replay as the new answer it is."""
        converted = self._convert_cached_generations(generations)
        first = converted[0]
        message = first.message.model_copy(update={"id": f"{LC_ID_PREFIX}-{run_id}"})
        converted[0] = ChatGeneration(message=message, generation_info=first.generation_info)
        return ChatResult(generations=list(converted)), message_chunks(message, first.generation_info)

    def _cache_key(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[str, str]:
        """``(prompt, llm_string)`` exactly as ``_generate_with_cache`` derives them."""
        model_kwargs = {key: value for key, value in kwargs.items() if key not in TRACING_KWARGS}
        llm_string = self._get_llm_string(stop=stop, **model_kwargs)
        # _generate_with_cache drops message ids before dumps(), so a re-sent answer matches.
        normalized = [m.model_copy(update={"id": None}) if m.id is not None else m for m in messages]
        return dumps(normalized), llm_string

    def _replay_chunks(self, generations: list[Generation]) -> Iterator[ChatGenerationChunk]:
        # What invoke() returns for a hit: the first generation (a text one as an AIMessage).
        generation = generations[0]
        if isinstance(generation, ChatGeneration):
            return message_chunks(generation.message, generation.generation_info)
        return message_chunks(AIMessage(content=generation.text), generation.generation_info)


class LLMStreamCache(_LLMBase):
    """What ``cached()`` adds to a text-completion model: cached streams."""

    def stream(self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any) -> Iterator[str]:
        if type(self)._stream is BaseLLM._stream:
            yield from super().stream(input, config, stop=stop, **kwargs)  # invoke(): cached there
            return
        prompt = self._convert_input(input).to_string()
        lead = StreamLead()
        with lead.looking_up():
            existing, llm_string, _, _ = get_prompts(self._cache_params(stop), [prompt], self.cache)
        live = super().stream(prompt, config, stop=stop, **kwargs)
        if existing:
            yield from replayed(live, text_chunks(existing[0][0]))
            return
        pieces: list[str] = []
        with abandoned_on_failure(_marking(self), prompt, llm_string):
            for piece in live:
                pieces.append(piece)
                lead.park()
                yield piece
                lead.resume()
        store(_marking(self), prompt, llm_string, [Generation(text="".join(pieces))])

    async def astream(
        self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[str]:
        if type(self)._stream is BaseLLM._stream and type(self)._astream is BaseLLM._astream:
            yield await self.ainvoke(input, config, stop=stop, **kwargs)  # cached there
            return
        prompt = self._convert_input(input).to_string()
        lead = StreamLead()
        with lead.looking_up():
            existing, llm_string, _, _ = await aget_prompts(self._cache_params(stop), [prompt], self.cache)
        live = super().astream(prompt, config, stop=stop, **kwargs)
        if existing:
            async for piece in areplayed(live, text_chunks(existing[0][0])):
                yield piece
            return
        pieces: list[str] = []
        async with aabandoned_on_failure(_marking(self), prompt, llm_string):
            async for piece in live:
                pieces.append(piece)
                lead.park()
                yield piece
                lead.resume()
        await astore(_marking(self), prompt, llm_string, [Generation(text="".join(pieces))])

    def _cache_params(self, stop: list[str] | None) -> dict[str, Any]:
        """The parameters ``generate()`` derives the ``llm_string`` from."""
        as_dict = getattr(self, "_dict_for_compat", None) or self.dict  # langchain-core < 1.4.2: dict()
        return {**as_dict(), "stop": stop}


def _marking(model: BaseLanguageModel[Any]) -> HitMarkingCache:
    assert isinstance(model.cache, HitMarkingCache), "cached() models read through a HitMarkingCache"
    return model.cache
