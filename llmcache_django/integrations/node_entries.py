"""How a LangGraph node entry is named and stored (no LangGraph import: the admin and the
commands read node entries without the ``[langgraph]`` extra)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from hashlib import sha256
from typing import Any

#: The sub-namespace of the LLM cache's store that node entries live in.
KIND = "langgraph"
_NAME_TAG = b"llmcache-langgraph-v1\x00"
#: Longest envelope header (namespace, key, serde type, times) that is parsed.
MAX_HEADER_BYTES = 64 * 1024


def entry_name(key: tuple[Sequence[str], str]) -> str:
    """The entry name of a LangGraph ``(namespace, key)``: a SHA-256 hex digest of both."""
    namespace, node_key = key
    body = json.dumps([list(namespace), node_key], separators=(",", ":")).encode("utf-8", "surrogatepass")
    return sha256(_NAME_TAG + body).hexdigest()


def encode_envelope(namespace: Sequence[str], key: str, type_: str, payload: bytes, ttl: float | None) -> bytes:
    """A JSON header line (namespace, key, serde type, times), then the serde payload."""
    now = time.time()
    header: dict[str, Any] = {"ns": list(namespace), "key": key, "type": type_, "created": now}
    if ttl is not None:
        header["expires"] = now + ttl
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + payload


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
