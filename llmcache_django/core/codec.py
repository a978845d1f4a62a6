"""Generations <-> bytes: a versioned JSON envelope holding allow-listed LangChain types only.

Nothing here imports or instantiates a class named by the stored data beyond the fixed
allow-list below, so a value planted under our key can at worst be a miss.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import orjson
import zstandard
from langchain_core import messages
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

#: Every value we write starts with one of these; anything else under our key is foreign.
MAGIC_JSON = b"LC1j"
MAGIC_ZSTD = b"LC1s"
#: Without a cache's own limit, a stored value never inflates beyond this (a planted "zip
#: bomb" is a miss). A cache allows :data:`DECODED_PER_STORED` times its ``MAX_ENTRY_BYTES``.
MAX_DECOMPRESSED_BYTES = 4 * 1024 * 1024
DECODED_PER_STORED = 4
#: More generations than this in one entry is not an answer any provider gives (OpenAI's
#: ``n`` stops at 128): such an entry is neither written nor read.
MAX_GENERATIONS = 128
#: Above this many bytes, a JSON body is first checked to hold at most MAX_JSON_VALUES values,
#: so a small value of many tiny items cannot make the parser build millions of objects.
SCAN_ABOVE_BYTES = 64 * 1024
MAX_JSON_VALUES = 100_000
#: A model call recorded as longer than this (seconds) is not a real measurement.
MAX_DURATION = 7 * 24 * 3600.0
#: zstd level 1 roughly halves a JSON answer of this size, for ~2.5 µs per read
#: (zlib takes twice as long for the same ratio; lz4 is faster but does not reach half).
DEFAULT_COMPRESS_MIN_BYTES = 1024


class _ZstdContexts(threading.local):
    """One compressor and one decompressor per thread.

    A python-zstandard context used from two threads at once corrupts its buffers and can
    crash the process; a new context per call costs ~10 µs, a thread's own one nothing.
    """

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=1)
        self.decompressor = zstandard.ZstdDecompressor()


_zstd = _ZstdContexts()

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
    """One cached answer with the metadata the admin and the stats need.

    The ``llm_string`` itself is not repeated in every entry: ``llm_hash`` names a record
    of it kept once per model (see :func:`llm_record_name`), and ``model`` is the model
    name parsed from it, for filtering.
    """

    prompt: str
    model: str
    llm_hash: str
    generations: list[Generation]
    created: float
    expires: float | None = None
    #: Seconds the model took to produce this answer (miss -> write), when known.
    duration: float | None = None
    #: Bytes of the JSON body before compression (0 for an entry not read from a store).
    body_size: int = 0
    #: The scope the entry was written in (``None``: unscoped, or written before scopes were stored).
    scope: str | None = None


class EntryTooLargeError(ValueError):
    """An entry is over the size a cache reads back, so it is not written."""


def encode(
    entry: Entry, *, compress_min_bytes: float = DEFAULT_COMPRESS_MIN_BYTES, max_bytes: int = MAX_DECOMPRESSED_BYTES
) -> bytes:
    """Serialize ``entry``; zstd-compress it when the JSON is at least ``compress_min_bytes``.

    Raises :class:`EntryTooLargeError` when the JSON is over ``max_bytes``, the most
    :func:`decode` would read back.
    """
    fields: dict[str, Any] = {
        "p": entry.prompt,
        "m": entry.model,
        "h": entry.llm_hash,
        "c": entry.created,
        "g": [_dump_generation(generation) for generation in entry.generations],
    }
    if entry.expires is not None:
        fields["x"] = entry.expires
    if entry.duration is not None:
        fields["d"] = round(entry.duration, 4)
    if entry.scope is not None:
        fields["s"] = entry.scope
    body = orjson.dumps(fields)
    if len(body) > max_bytes:
        raise EntryTooLargeError(f"entry of {len(body)} bytes of JSON is over the {max_bytes}-byte limit; not cached")
    if len(body) >= compress_min_bytes:
        return MAGIC_ZSTD + _zstd.compressor.compress(body)
    return MAGIC_JSON + body


def decode(value: bytes | bytearray | memoryview | str, *, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> Entry:
    """Parse a stored value back into an :class:`Entry`, or raise :class:`CodecError`.

    Every field is type-checked, the JSON may be at most ``max_bytes`` once inflated, and
    an entry holds at most :data:`MAX_GENERATIONS`: a planted value costs at most a bounded
    amount of time and memory, and is then a miss.
    """
    raw = value.encode() if isinstance(value, str) else value
    try:
        body = _bounded_values(_unwrap(raw, max_bytes))
        data = orjson.loads(body)
        if not isinstance(data, dict):
            raise CodecError("an entry is a JSON object")
        return Entry(
            _typed(data, "p", str),
            _typed(data, "m", str),
            _typed(data, "h", str),
            _load_generations(data.get("g")),
            _timestamp(data.get("c")),
            _timestamp(data["x"]) if data.get("x") is not None else None,
            _duration(data.get("d")),
            len(body),
            _typed(data, "s", str) if data.get("s") is not None else None,
        )
    except CodecError:
        raise
    except Exception as exc:  # any malformed content is a miss, whatever the parser raised
        raise CodecError(f"corrupt entry: {type(exc).__name__}: {exc}") from exc


def llm_hash(llm_string: str) -> str:
    """A short, stable name for an ``llm_string`` (the first 16 hex digits of its SHA-256)."""
    return sha256(llm_string.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def llm_record_name(llm_hash: str) -> str:
    """The store name under which the ``llm_string`` with this hash is kept."""
    return f"llm:{llm_hash}"


def new_entry(
    prompt: str,
    model: str,
    llm_hash: str,
    generations: Sequence[Generation],
    ttl: float | None,
    duration: float | None = None,
    scope: str | None = None,
) -> Entry:
    """Build an entry stamped now (written in ``scope``), checking every generation against the allow-list."""
    if not 0 < len(generations) <= MAX_GENERATIONS:
        raise UnsupportedGenerationError(
            f"cannot cache {len(generations)} generations (from 1 to {MAX_GENERATIONS}): it would not read back as a hit"
        )
    for generation in generations:
        _check_allowed(generation)
    if duration is not None and not (math.isfinite(duration) and 0 <= duration <= MAX_DURATION):
        duration = None
    now = time.time()
    expires = now + ttl if ttl else None
    return Entry(prompt, model, llm_hash, list(generations), now, expires, duration, scope=scope)


def _unwrap(raw: bytes | bytearray | memoryview, max_bytes: int) -> bytes:
    magic = bytes(raw[:4])
    if magic == MAGIC_JSON:
        if len(raw) - 4 > max_bytes:
            raise CodecError(f"entry of {len(raw) - 4} bytes is over the {max_bytes}-byte limit")
        return bytes(raw[4:])
    if magic == MAGIC_ZSTD:
        return _inflate(bytes(raw[4:]), max_bytes)
    raise CodecError("foreign value: not written by llmcache_django")


def _inflate(frame: bytes, max_bytes: int) -> bytes:
    # zstandard's max_output_size is ignored when the frame declares its size, so the
    # declared size is checked first; a frame that does not declare it is read in bounded steps.
    declared = zstandard.frame_content_size(frame)
    if declared > max_bytes:
        raise CodecError(f"compressed entry declares {declared} bytes, over the {max_bytes}-byte limit")
    decompressor = _zstd.decompressor
    if declared >= 0:
        return decompressor.decompress(frame)
    body = decompressor.stream_reader(frame).read(max_bytes + 1)
    if len(body) > max_bytes:
        raise CodecError(f"compressed entry inflates beyond the {max_bytes}-byte limit")
    return body


def _bounded_values(body: bytes) -> bytes:
    # Every JSON value but the first in its container follows a comma or opens with a bracket,
    # so these counts bound how many objects parsing builds (commas in strings only add).
    if len(body) > SCAN_ABOVE_BYTES:
        values = body.count(b",") + body.count(b"{") + body.count(b"[")
        if values > MAX_JSON_VALUES:
            raise CodecError(f"entry holds up to {values} JSON values, over the limit of {MAX_JSON_VALUES}")
    return body


def _typed(data: dict[str, Any], field: str, kind: type) -> Any:
    value = data.get(field)
    if type(value) is not kind:
        raise CodecError(f"field {field!r} is {type(value).__name__}, not {kind.__name__}")
    return value


def _timestamp(value: Any) -> float:
    if type(value) not in (int, float) or not 0 <= value < 1e11:
        raise CodecError(f"{value!r} is not a Unix time")
    return float(value)


def _duration(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 <= value <= MAX_DURATION:
        raise CodecError(f"{value!r} is not a model call's duration in seconds")
    return float(value)


def _load_generations(items: Any) -> list[Generation]:
    if type(items) is not list or not items:
        # LangChain takes any list as a hit and reads its first generation.
        raise CodecError("an entry holds a non-empty list of generations")
    if len(items) > MAX_GENERATIONS:
        raise CodecError(f"{len(items)} generations is over the limit of {MAX_GENERATIONS}")
    return [_load_generation(item) for item in items]


def _check_allowed(generation: Generation) -> None:
    kind = type(generation).__name__
    if GENERATION_TYPES.get(kind) is not type(generation):
        raise UnsupportedGenerationError(f"cannot cache {type(generation)!r}: not an allow-listed Generation type")
    message = generation.message if isinstance(generation, ChatGeneration) else None
    if message is not None and MESSAGE_TYPES.get(message.type) is not type(message):
        raise UnsupportedGenerationError(f"cannot cache message type {type(message)!r}")


def _dump_generation(generation: Generation) -> dict[str, Any]:
    item: dict[str, Any] = {"t": type(generation).__name__}
    if generation.generation_info is not None:
        item["i"] = generation.generation_info
    if not isinstance(generation, ChatGeneration):
        item["x"] = generation.text
    else:
        # Defaults are left out (validation restores them); the type says which class.
        item["k"] = generation.message.type
        item["m"] = generation.message.model_dump(exclude_defaults=True)
    return item


def _load_generation(item: Any) -> Generation:
    if type(item) is not dict or type(item.get("t")) is not str:
        raise CodecError("a generation is a JSON object with a type")
    info = item.get("i")
    if info is not None and type(info) is not dict:
        raise CodecError("generation_info is a JSON object")
    cls = GENERATION_TYPES.get(item["t"])
    if cls is None:
        raise CodecError(f"generation type {item['t']!r} is not allow-listed")
    if "m" not in item:
        return cls(text=_typed(item, "x", str), generation_info=info)
    if type(item.get("k")) is not str or type(item["m"]) is not dict:
        raise CodecError("a chat generation holds a typed message object")
    message_cls = MESSAGE_TYPES.get(item["k"])
    if message_cls is None:
        raise CodecError(f"message type {item['k']!r} is not allow-listed")
    message = message_cls.model_validate(item["m"])
    return cls(message=message, generation_info=info)  # type: ignore[call-arg]
