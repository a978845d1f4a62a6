"""Key derivation: one unambiguous, namespaced digest per ``(prompt, llm_string)``.

A chat prompt is keyed by its canonical form (:func:`~llmcache_django.core.canonical.canonical_prompt`):
what the provider sees of the messages, so a history whose earlier answers were hits keys
the same as one whose answers were live calls.
"""

from __future__ import annotations

from hashlib import sha256
from typing import NamedTuple

from django.core.cache.backends.base import default_key_func
from django.utils.module_loading import import_string

from llmcache_django.core.canonical import canonical_prompt

MEMCACHED_MAX_KEY = 250
#: The longest entry name: a scope's 16-digit tag, a dot and the 64-digit digest.
MAX_ENTRY_NAME = 16 + 1 + 64
#: Part of every entry digest: bumped when the key derivation changes, so an entry is
#: never read under a key it was not written for (older entries become misses).
KEY_VERSION = 2
_VERSION_TAG = f"llmcache-key-v{KEY_VERSION}\x00".encode()
#: Starts a scoped digest's body (the unscoped body starts with the prompt's 8-byte length,
#: whose first byte is never this one for a prompt under 2**56 bytes), so no scoped name
#: equals an unscoped one.
_SCOPE_MARK = b"\xff"
_SCOPE_TAG = b"llmcache-scope\x00"


class EntryKey(NamedTuple):
    """Where an entry lives (``name``) and the canonical prompt stored in it for its collision check."""

    name: str
    prompt: str


def entry_key(prompt: str, llm_string: str, scope: str | None = None) -> EntryKey:
    """The entry name and canonical prompt for ``(prompt, llm_string)`` in ``scope``."""
    canonical = canonical_prompt(prompt)
    return EntryKey(_name(canonical, llm_string, scope), canonical)


def entry_digest(prompt: str, llm_string: str, scope: str | None = None) -> str:
    """Return the entry name of ``(prompt, llm_string)`` in ``scope``: a SHA-256 hex digest of
    the key version and a length-prefixed encoding of the scope (when there is one), the
    canonical prompt and the ``llm_string``; a scoped name starts with the scope's tag
    (:func:`scope_tag`) and a dot, so a scope's entries can be found and erased together.

    The length prefix makes the encoding unambiguous: ``("ab", "c")`` and ``("a", "bc")``
    hash different bytes, unlike the ``md5(prompt + llm_string)`` of langchain-community.
    """
    return _name(canonical_prompt(prompt), llm_string, scope)


def scope_tag(scope: str) -> str:
    """The 16 hex digits that start the name of every entry of ``scope``."""
    return sha256(_SCOPE_TAG + scope.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _name(canonical: str, llm_string: str, scope: str | None) -> str:
    if scope is None:
        return _digest(canonical, llm_string)
    return f"{scope_tag(scope)}.{_digest(canonical, llm_string, _SCOPE_MARK + _prefixed(scope))}"


def _digest(canonical: str, llm_string: str, scope: bytes = b"") -> str:
    body = scope + _prefixed(canonical) + llm_string.encode("utf-8", "surrogatepass")
    return sha256(_VERSION_TAG + body).hexdigest()


def _prefixed(text: str) -> bytes:
    encoded = text.encode("utf-8", "surrogatepass")
    return len(encoded).to_bytes(8, "big") + encoded


def key_prefix(namespace: str, *, prefix: str = "", version: int = 1, key_func: str | None = None) -> str:
    """Return the string every key of ``namespace`` starts with.

    ``prefix``, ``version`` and ``key_func`` are a ``CACHES`` alias's ``KEY_PREFIX``,
    ``VERSION`` and ``KEY_FUNCTION``; the key function is applied to the namespace once,
    so its output must keep what follows as a suffix (Django's default does).
    """
    make_key = import_string(key_func) if key_func else default_key_func
    return str(make_key(f"{namespace}:", prefix, version))
