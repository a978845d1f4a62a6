"""Generations <-> bytes: a versioned JSON envelope holding allow-listed LangChain types only.

Nothing here imports or instantiates a class named by the stored data beyond the fixed
allow-list below, so a value planted under our key can at worst be a miss.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from langchain_core import messages
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

#: Every value we write starts with this; anything else under our key is foreign.
MAGIC_JSON = b"LC1j"
MAGIC_ZLIB = b"LC1z"
DEFAULT_COMPRESS_MIN_BYTES = 16 * 1024

GENERATION_TYPES: dict[str, type[Generation]] = {
    cls.__name__: cls for cls in (Generation, GenerationChunk, ChatGeneration, ChatGenerationChunk)
}
MESSAGE_TYPES: dict[str, type[messages.BaseMessage]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        messages.AIMessage,
        messages.AIMessageChunk,
        messages.HumanMessage,
        messages.HumanMessageChunk,
        messages.SystemMessage,
        messages.SystemMessageChunk,
        messages.ToolMessage,
        messages.ToolMessageChunk,
        messages.FunctionMessage,
        messages.FunctionMessageChunk,
        messages.ChatMessage,
        messages.ChatMessageChunk,
        messages.RemoveMessage,
    )
}


class CodecError(ValueError):
    """A stored value is not one of our entries (foreign, corrupt or truncated)."""


class UnsupportedGenerationError(TypeError):
    """A generation or message type outside the allow-list was offered for caching."""


@dataclass(frozen=True)
class Entry:
    """One cached answer with the metadata the admin and the stats need."""

    prompt: str
    llm_string: str
    generations: list[Generation]
    created: float
    expires: float | None = None
    #: Seconds the model took to produce this answer (miss -> write), when known.
    duration: float | None = None


def encode(entry: Entry, *, compress_min_bytes: int = DEFAULT_COMPRESS_MIN_BYTES) -> bytes:
    """Serialize ``entry``; zlib-compress it when the JSON is at least ``compress_min_bytes``."""
    body = orjson.dumps(
        {
            "p": entry.prompt,
            "l": entry.llm_string,
            "c": entry.created,
            "x": entry.expires,
            "d": entry.duration,
            "g": [_dump_generation(generation) for generation in entry.generations],
        }
    )
    if len(body) >= compress_min_bytes:
        return MAGIC_ZLIB + zlib.compress(body, 1)
    return MAGIC_JSON + body


def decode(value: bytes | bytearray | memoryview | str) -> Entry:
    """Parse a stored value back into an :class:`Entry`, or raise :class:`CodecError`."""
    raw = value.encode() if isinstance(value, str) else bytes(value)
    try:
        body = _unwrap(raw)
        data = orjson.loads(body)
        return Entry(
            prompt=data["p"],
            llm_string=data["l"],
            generations=[_load_generation(item) for item in data["g"]],
            created=data["c"],
            expires=data.get("x"),
            duration=data.get("d"),
        )
    except CodecError:
        raise
    except Exception as exc:  # any malformed content is a miss, whatever the parser raised
        raise CodecError(f"corrupt entry: {type(exc).__name__}: {exc}") from exc


def decode_generations(value: bytes | bytearray | memoryview | str) -> list[Generation]:
    """Return only the generations of a stored value (the lookup fast path)."""
    return decode(value).generations


def new_entry(
    prompt: str, llm_string: str, generations: Sequence[Generation], ttl: float | None, duration: float | None = None
) -> Entry:
    """Build an entry stamped now, checking every generation against the allow-list."""
    for generation in generations:
        _check_allowed(generation)
    now = time.time()
    expires = now + ttl if ttl else None
    return Entry(prompt, llm_string, list(generations), now, expires, duration)


def _unwrap(raw: bytes) -> bytes:
    magic = raw[:4]
    if magic == MAGIC_JSON:
        return raw[4:]
    if magic == MAGIC_ZLIB:
        return zlib.decompress(raw[4:])
    raise CodecError("foreign value: not written by llmcache_django")


def _check_allowed(generation: Generation) -> None:
    kind = type(generation).__name__
    if GENERATION_TYPES.get(kind) is not type(generation):
        raise UnsupportedGenerationError(f"cannot cache {type(generation)!r}: not an allow-listed Generation type")
    message = getattr(generation, "message", None)
    if message is not None and MESSAGE_TYPES.get(message.type) is not type(message):
        raise UnsupportedGenerationError(f"cannot cache message type {type(message)!r}")


def _dump_generation(generation: Generation) -> dict[str, Any]:
    item: dict[str, Any] = {"t": type(generation).__name__, "i": generation.generation_info}
    message = getattr(generation, "message", None)
    if message is None:
        item["x"] = generation.text
    else:
        item["m"] = message.model_dump()
    return item


def _load_generation(item: dict[str, Any]) -> Generation:
    cls = GENERATION_TYPES.get(item["t"])
    if cls is None:
        raise CodecError(f"generation type {item['t']!r} is not allow-listed")
    if "m" not in item:
        return cls(text=item["x"], generation_info=item["i"])
    fields = item["m"]
    message_cls = MESSAGE_TYPES.get(fields.get("type"))
    if message_cls is None:
        raise CodecError(f"message type {fields.get('type')!r} is not allow-listed")
    return cls(message=message_cls.model_validate(fields), generation_info=item["i"])  # type: ignore[call-arg]
