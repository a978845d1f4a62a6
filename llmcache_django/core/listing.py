"""What an operator sees of an entry: metadata parsed from the stored envelope."""

from __future__ import annotations

import ast
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmcache_django.core import codec
from llmcache_django.core.keys import scope_tag

#: Model identifiers in LangChain's ``llm_string``, most specific first.
MODEL_PARAMS = ("model_name", "model", "model_id", "deployment_name", "_type")


@dataclass(frozen=True)
class EntryInfo:
    """One cached answer as listed by the admin and ``clear_llm_cache``."""

    name: str
    prompt: str
    llm_string: str
    model: str
    created: float
    expires: float | None
    size: int
    duration: float | None
    #: Bytes of the entry before compression (``size`` is what the server stores).
    original_size: int = 0
    #: The scope it was written in, as stored in it (``None``: unscoped, or not stored).
    scope: str | None = None

    @property
    def scope_tag(self) -> str | None:
        """The tag of the scope its name says it was written in (``None``: unscoped)."""
        tag, dot, _ = self.name.partition(".")
        return tag if dot else None

    @property
    def ttl_left(self) -> float | None:
        """Seconds until the entry expires, or ``None`` when it never does."""
        return None if self.expires is None else max(0.0, self.expires - time.time())

    @property
    def age(self) -> float:
        """Seconds since the entry was written."""
        return max(0.0, time.time() - self.created)

    @property
    def compressed(self) -> bool:
        """Whether the server holds this entry compressed."""
        return self.original_size > self.size


def entry_info(
    name: str, value: bytes, llm_strings: Callable[[str], str], *, max_bytes: int = codec.MAX_DECOMPRESSED_BYTES
) -> tuple[EntryInfo, codec.Entry]:
    """Decode a stored value into its listing metadata and the full entry;
    ``llm_strings(llm_hash)`` finds the entry's ``llm_string``."""
    entry = codec.decode(value, max_bytes=max_bytes)
    info = EntryInfo(
        name=name,
        prompt=entry.prompt,
        llm_string=llm_strings(entry.llm_hash),
        model=entry.model,
        created=entry.created,
        expires=entry.expires,
        size=len(value),
        duration=entry.duration,
        original_size=entry.body_size,
        scope=_scope_of(name, entry.scope),
    )
    return info, entry


def _scope_of(name: str, scope: str | None) -> str | None:
    # The name is where the entry is read from: a stored scope that disagrees with it is not shown.
    return scope if scope is not None and name.startswith(f"{scope_tag(scope)}.") else None


_LITERAL_EVAL_LOCK = threading.Lock()


def model_of(llm_string: str) -> str:
    """The model named in a LangChain ``llm_string`` (``model_name``, ``model``, ... ``_type``).

    LangChain writes ``<json>---[('param', value), ...]`` for serializable models and the
    bare list otherwise; the list is read with ``ast.literal_eval`` (literals only).
    """
    params = _params(llm_string.rsplit("---", 1)[-1])
    for key in MODEL_PARAMS:
        value = params.get(key)
        if isinstance(value, str) and value:
            return value
    return "unknown"


def _params(text: str) -> dict[str, object]:
    try:
        # CPython 3.11's AST constructors are not safe in two threads at once ("AST constructor
        # recursion depth mismatch", a SystemError out of the model call's update): one at a time.
        with _LITERAL_EVAL_LOCK:
            pairs = ast.literal_eval(text.strip())
        return {str(key): value for key, value in pairs}
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, SystemError):
        found = re.findall(r"\('(\w+)', '([^']*)'\)", text)
        return dict(found)
