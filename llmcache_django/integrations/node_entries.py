"""How a LangGraph node entry is named and stored (no LangGraph import: the admin and the
commands read node entries without the ``[langgraph]`` extra)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from hashlib import sha256
from typing import Any

#: The sub-namespace of the LLM cache's store that node entries live in.
KIND = "langgraph"
_NAME_TAG = b"llmcache-langgraph-v1\x00"
#: Longest envelope header (namespace, key, serde type, times) that is parsed.
MAX_HEADER_BYTES = 64 * 1024


def entry_name(key: tuple[Sequence[str], str]) -> str:
    """The entry name of a LangGraph ``(namespace, key)``: a SHA-256 hex digest of both (of
    ``[namespace, key]`` as compact JSON, hashed from a per-namespace state)."""
    namespace, node_key = key
    digest = _namespace_digest(tuple(namespace)).copy()
    digest.update(_json_text(node_key) + b"]")
    return digest.hexdigest()


def header_start(namespace: Sequence[str], key: str) -> bytes:
    """How the envelope header of the entry ``(namespace, key)`` begins, up to its serde type."""
    return _namespace_header(tuple(namespace)) + _json_text(key) + b',"type":"'


def encode_envelope(namespace: Sequence[str], key: str, type_: str, payload: bytes, ttl: float | None) -> bytes:
    """A JSON header line (namespace, key, serde type, times), then the serde payload."""
    now = time.time()
    times = f'"created":{now!r}' if ttl is None else f'"created":{now!r},"expires":{now + ttl!r}'
    type_text = _json_text(type_)[1:]  # its opening quote is the end of header_start()
    return b"".join((header_start(namespace, key), type_text, b",", times.encode(), b"}\n", payload))


def typed_payload(value: bytes, start: bytes) -> tuple[str, bytes] | None:
    """The serde type and payload of a stored node entry whose header begins with ``start``
    (:func:`header_start`), without parsing the header; ``None`` if it does not begin so."""
    if not value.startswith(start):
        return None
    type_end = value.find(b'"', len(start), MAX_HEADER_BYTES)
    end = value.find(b"\n", type_end, MAX_HEADER_BYTES)
    if type_end < 0 or end < 0:
        return None
    return value[len(start) : type_end].decode("ascii", "replace"), value[end + 1 :]


_to_json: Callable[[str], str] = json.JSONEncoder(separators=(",", ":")).encode


def _json_text(text: str) -> bytes:
    """``text`` as a JSON string (ASCII, as ``json.dumps`` writes it)."""
    return _to_json(text).encode()


@lru_cache(maxsize=1024)
def _namespace_json(namespace: tuple[str, ...]) -> bytes:
    return _to_json(list(namespace)).encode()  # type: ignore[arg-type]


@lru_cache(maxsize=1024)
def _namespace_digest(namespace: tuple[str, ...]) -> Any:
    return sha256(_NAME_TAG + b"[" + _namespace_json(namespace) + b",")


@lru_cache(maxsize=1024)
def _namespace_header(namespace: tuple[str, ...]) -> bytes:
    return b'{"ns":' + _namespace_json(namespace) + b',"key":'


def decode_envelope(value: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the serde payload of a stored node entry; ``ValueError`` for anything else."""
    end = value.find(b"\n", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise ValueError("not a node entry")
    header = json.loads(value[:end])
    if not isinstance(header, dict):
        raise ValueError("not a node entry")
    return header, value[end + 1 :]


def namespace_of(value: bytes) -> tuple[str, ...] | None:
    """The LangGraph namespace of a stored node entry, or ``None`` if it is not one."""
    try:
        namespace = decode_envelope(value)[0].get("ns")
    except ValueError:
        return None
    if not isinstance(namespace, list) or not all(isinstance(part, str) for part in namespace):
        return None
    return tuple(namespace)
