"""Key derivation: one unambiguous, namespaced digest per ``(prompt, llm_string)``.

A chat model's prompt reaches the cache as LangChain's ``dumps(messages)``, which holds
more than the provider is sent: usage, response metadata (our hit marker included), the
``total_cost`` LangChain adds to a hit. The key is derived from a canonical form of that
JSON instead (:func:`canonical_prompt`), so a history whose earlier answers were hits keys
the same as one whose answers were live calls. The JSON is read as plain data (orjson);
nothing in it is ever loaded as a LangChain object.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any, NamedTuple

import orjson
from django.core.cache.backends.base import default_key_func
from django.utils.module_loading import import_string

MEMCACHED_MAX_KEY = 250
#: Part of every entry digest: bumped when the key derivation changes, so an entry is
#: never read under a key it was not written for (older entries become misses).
KEY_VERSION = 2
_VERSION_TAG = f"llmcache-key-v{KEY_VERSION}\x00".encode()
#: message ``type`` in ``dumps()`` output (chunks included) -> (canonical type, class name).
_MESSAGE_CLASSES: dict[str, tuple[str, str]] = {
    "ai": ("ai", "AIMessage"),
    "AIMessageChunk": ("ai", "AIMessage"),
    "human": ("human", "HumanMessage"),
    "HumanMessageChunk": ("human", "HumanMessage"),
    "system": ("system", "SystemMessage"),
    "SystemMessageChunk": ("system", "SystemMessage"),
    "tool": ("tool", "ToolMessage"),
    "ToolMessageChunk": ("tool", "ToolMessage"),
    "function": ("function", "FunctionMessage"),
    "FunctionMessageChunk": ("function", "FunctionMessage"),
    "chat": ("chat", "ChatMessage"),
    "ChatMessageChunk": ("chat", "ChatMessage"),
}
#: message ``type`` -> (canonical type, the serialized ``id`` of its message class).
MESSAGE_KINDS: dict[str, tuple[str, list[str]]] = {
    type_: (kind, ["langchain", "schema", "messages", class_name])
    for type_, (kind, class_name) in _MESSAGE_CLASSES.items()
}
#: Message fields a provider is sent, besides content, type and an answer's tool calls.
PROVIDER_FIELDS = frozenset({"name", "role", "tool_call_id", "status", "additional_kwargs"})
#: How many raw prompts keep their canonical form in memory: a miss's ``update`` derives
#: the key of the prompt its ``lookup`` just derived.
CANONICAL_MEMO_LIMIT = 256
_memo: dict[str, str] = {}


class EntryKey(NamedTuple):
    """Where an entry lives (``name``) and the canonical prompt stored in it for its collision check."""

    name: str
    prompt: str


def entry_key(prompt: str, llm_string: str) -> EntryKey:
    """The entry name and canonical prompt for ``(prompt, llm_string)``."""
    canonical = canonical_prompt(prompt)
    return EntryKey(_digest(canonical, llm_string), canonical)


def entry_digest(prompt: str, llm_string: str) -> str:
    """Return the entry name of ``(prompt, llm_string)``: a SHA-256 hex digest of the key
    version and a length-prefixed encoding of the canonical prompt and the ``llm_string``.

    The length prefix makes the encoding unambiguous: ``("ab", "c")`` and ``("a", "bc")``
    hash different bytes, unlike the ``md5(prompt + llm_string)`` of langchain-community.
    """
    return _digest(canonical_prompt(prompt), llm_string)


def _digest(canonical: str, llm_string: str) -> str:
    prompt_bytes = canonical.encode("utf-8", "surrogatepass")
    header = len(prompt_bytes).to_bytes(8, "big")
    body = header + prompt_bytes + llm_string.encode("utf-8", "surrogatepass")
    return sha256(_VERSION_TAG + body).hexdigest()


def canonical_prompt(prompt: str) -> str:
    """What the provider sees of ``prompt``, in one canonical JSON form.

    A ``dumps(messages)`` prompt becomes the messages with only their provider-visible
    fields (type/role, content, name, tool calls, ``tool_call_id``, status and
    ``additional_kwargs``), keys sorted; ids, ``usage_metadata`` and ``response_metadata``
    are left out. Any other prompt (a text model's) is returned unchanged. The result is a
    fixed point (canonicalizing it again gives it back), so two prompts share an entry
    exactly when their canonical forms are equal.
    """
    if not prompt.startswith("[{"):
        return prompt
    known = _memo.get(prompt)
    if known is not None:
        return known
    canonical = _canonical_messages(prompt)
    if len(_memo) >= CANONICAL_MEMO_LIMIT:
        _memo.clear()
    _memo[prompt] = canonical
    return canonical


def _canonical_messages(prompt: str) -> str:
    try:
        serialized = orjson.loads(prompt)
        messages = [_canonical_message(item) for item in serialized]
        return orjson.dumps(messages, option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, TypeError, KeyError, ValueError, AttributeError):
        return prompt  # not a list of serialized messages: the prompt as it is


def _canonical_message(item: Any) -> dict[str, Any]:
    if item["lc"] != 1 or item["type"] != "constructor":
        raise ValueError("not a serialized object")
    fields = item["kwargs"]
    kind, class_path = MESSAGE_KINDS[fields["type"]]
    kwargs = {name: fields[name] for name in PROVIDER_FIELDS.intersection(fields) if fields[name] is not None}
    kwargs["type"] = kind
    kwargs["content"] = fields["content"]
    if not kwargs.get("additional_kwargs"):
        kwargs.pop("additional_kwargs", None)
    if kind == "ai":
        _canonical_answer(fields, kwargs)
    return {"lc": 1, "type": "constructor", "id": class_path, "kwargs": kwargs}


def _canonical_answer(fields: dict[str, Any], kwargs: dict[str, Any]) -> None:
    content = kwargs["content"]
    if not isinstance(content, str):
        # A streamed answer's blocks carry the stream's ``index``; the same answer invoked does not.
        kwargs["content"] = [
            {k: v for k, v in block.items() if k != "index"} if isinstance(block, dict) else block for block in content
        ]
    for calls in ("tool_calls", "invalid_tool_calls"):
        if fields.get(calls):
            kwargs[calls] = [{"name": c.get("name"), "args": c.get("args"), "id": c.get("id")} for c in fields[calls]]


def key_prefix(namespace: str, *, prefix: str = "", version: int = 1, key_func: str | None = None) -> str:
    """Return the string every key of ``namespace`` starts with.

    ``prefix``, ``version`` and ``key_func`` are a ``CACHES`` alias's ``KEY_PREFIX``,
    ``VERSION`` and ``KEY_FUNCTION``; the key function is applied to the namespace once,
    so its output must keep what follows as a suffix (Django's default does).
    """
    make_key = import_string(key_func) if key_func else default_key_func
    return str(make_key(f"{namespace}:", prefix, version))
