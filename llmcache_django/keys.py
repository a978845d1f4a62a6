"""Key derivation: one unambiguous, namespaced digest per ``(prompt, llm_string)``."""

from __future__ import annotations

from hashlib import sha256

from django.core.cache.backends.base import default_key_func
from django.utils.module_loading import import_string

MEMCACHED_MAX_KEY = 250


def entry_digest(prompt: str, llm_string: str) -> str:
    """Return the SHA-256 hex digest of a length-prefixed encoding of both strings.

    The length prefix makes the encoding unambiguous: ``("ab", "c")`` and ``("a", "bc")``
    hash different bytes, unlike the ``md5(prompt + llm_string)`` of langchain-community.
    """
    prompt_bytes = prompt.encode("utf-8", "surrogatepass")
    header = len(prompt_bytes).to_bytes(8, "big")
    return sha256(header + prompt_bytes + llm_string.encode("utf-8", "surrogatepass")).hexdigest()


def key_prefix(namespace: str, *, prefix: str = "", version: int = 1, key_func: str | None = None) -> str:
    """Return the string every key of ``namespace`` starts with.

    ``prefix``, ``version`` and ``key_func`` are a ``CACHES`` alias's ``KEY_PREFIX``,
    ``VERSION`` and ``KEY_FUNCTION``; the key function is applied to the namespace once,
    so its output must keep what follows as a suffix (Django's default does).
    """
    make_key = import_string(key_func) if key_func else default_key_func
    return str(make_key(f"{namespace}:", prefix, version))
