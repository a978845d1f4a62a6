"""Hostile values an attacker or an unlucky operator could leave under our keys.

:func:`hostile_values` derives them, deterministically, from one valid entry: every field of
the envelope (at every depth) replaced by each wrong-typed value, truncations, oversized and
compressed bombs, foreign formats and pickles.
"""

from __future__ import annotations

import functools
import json
import pickle
from collections.abc import Iterator
from typing import Any

import orjson
import zstandard

from llmcache_django.core import codec

#: What a field may be replaced with: wrong types, extremes, nesting.
WRONG_VALUES: list[Any] = [
    "abc",
    "",
    1e308,
    -1e308,
    -1,
    0,
    10**30,
    True,
    None,
    [],
    {},
    [1, 2, 3],
    {"total_tokens": "abc"},
    {"t": "Generation"},
    "x" * 10_000,
    [[[[[[[[[[[]]]]]]]]]]],
]


class Exploit:
    """A pickle that records it ran, if anything ever unpickles it."""

    ran = False

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("from tests.hostile import Exploit; Exploit.ran = True",))


def hostile_values(valid: bytes, max_entry_bytes: int) -> Iterator[tuple[str, bytes]]:
    """``(label, value)`` pairs derived from the stored value ``valid``: at least 1,000 values
    that must each read as a miss or a well-formed hit, never an exception, never code run,
    never unbounded memory."""
    body = zstandard.decompress(valid[4:]) if valid.startswith(codec.MAGIC_ZSTD) else valid[4:]
    fields = orjson.loads(body)
    for path in _paths(fields):
        for index, wrong in enumerate(WRONG_VALUES):
            mutated = _replaced(fields, path, wrong)
            body = json.dumps(mutated).encode()
            yield f"{'/'.join(map(str, path))}={index}", codec.MAGIC_JSON + body
            yield f"{'/'.join(map(str, path))}={index}/zstd", codec.MAGIC_ZSTD + zstandard.compress(body)
    yield from generation_lists(fields)
    for cut in range(0, len(valid), max(1, len(valid) // 60)):
        yield f"truncated-{cut}", valid[:cut]
    yield from bombs(max_entry_bytes)
    yield from foreign_values()


@functools.cache
def bombs(max_entry_bytes: int) -> tuple[tuple[str, bytes], ...]:
    """Values that would cost far more than their size to decode (made once: they take a while)."""
    return tuple(_bombs(max_entry_bytes))


def _bombs(max_entry_bytes: int) -> Iterator[tuple[str, bytes]]:
    huge = 64 * max_entry_bytes
    spaces = b"{" + b" " * huge + b"}"
    yield "zstd-declared-size", codec.MAGIC_ZSTD + zstandard.ZstdCompressor().compress(spaces)
    undeclared = zstandard.ZstdCompressor(write_content_size=False).compress(spaces)
    yield "zstd-undeclared-size", codec.MAGIC_ZSTD + undeclared
    streamed = zstandard.ZstdCompressor().compressobj()
    yield "zstd-streamed", codec.MAGIC_ZSTD + streamed.compress(spaces) + streamed.flush()
    many = b'{"p":"p","m":"m","h":"h","c":1,"g":[' + b",".join([b'{"t":"Generation","x":""}'] * 3_000_000) + b"]}"
    yield "three-million-generations", codec.MAGIC_ZSTD + zstandard.compress(many)
    fits = max_entry_bytes * codec.DECODED_PER_STORED // 30
    under_cap = b'{"p":"p","m":"m","h":"h","c":1,"g":[' + b",".join([b'{"t":"Generation","x":""}'] * fits) + b"]}"
    yield "generations-under-the-size-cap", codec.MAGIC_ZSTD + zstandard.compress(under_cap)
    yield "oversized", codec.MAGIC_JSON + b" " * (max_entry_bytes + 1)
    deep = b"[" * 100_000 + b"]" * 100_000
    yield "deeply-nested", codec.MAGIC_ZSTD + zstandard.compress(deep)


def generation_lists(fields: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """Well-formed entries whose generation list is empty or longer than any provider returns."""
    for label, generations in [
        ("no-generations", []),
        ("too-many-generations", fields["g"][:1] * (codec.MAX_GENERATIONS + 1)),
    ]:
        body = orjson.dumps({**fields, "g": generations})
        yield label, codec.MAGIC_JSON + body
        yield f"{label}/zstd", codec.MAGIC_ZSTD + zstandard.compress(body)


#: Values another program (or a bug) could leave under our bookkeeping keys: the generation
#: counter, the shared counters. Some hold our ``:`` separator, which tags entries.
BOOKKEEPING_VALUES: list[bytes] = [
    b"1:2",
    b"12:LC1j{}",
    b":",
    b"",
    b"abc",
    b"-1",
    b" 7",
    b"1" * 30,
    b"\xff\xfe",
    b"1e3",
]


def foreign_values() -> Iterator[tuple[str, bytes]]:
    """Values of other formats: other programs', langchain-community's, pickles, noise."""
    yield "empty", b""
    yield "magic-only-json", codec.MAGIC_JSON
    yield "magic-only-zstd", codec.MAGIC_ZSTD
    yield "community", b'{"0": "{\\"lc\\": 1, \\"type\\": \\"constructor\\"}"}'
    yield "pickle", pickle.dumps(Exploit())
    yield "pickle-after-magic", codec.MAGIC_JSON + pickle.dumps(Exploit())
    yield "zstd-pickle", codec.MAGIC_ZSTD + zstandard.compress(pickle.dumps(Exploit()))
    yield "not-utf8", codec.MAGIC_JSON + b"\xff\xfe\xfd"
    yield "nan", codec.MAGIC_JSON + b'{"p":"p","c":NaN}'
    yield "noise", bytes(range(256)) * 8


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replaced(value: Any, path: tuple[Any, ...], wrong: Any) -> Any:
    if not path:
        return wrong
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {key: _replaced(item, rest, wrong) if key == head else item for key, item in value.items()}
    return [_replaced(item, rest, wrong) if index == head else item for index, item in enumerate(value)]
