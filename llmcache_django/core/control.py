"""Per-call directives: the one gate that decides whether a call reads and writes the cache.

``llm_cache_control("refresh" | "no-store" | "off", *, max_age=None, ttl=None, scope=None)``
sets directives for a block (context manager) or a function (decorator, sync or async). They
live in a :class:`~contextvars.ContextVar`, so they follow asyncio tasks and
``sync_to_async``/``async_to_sync`` and never leak between threads, tasks or requests.
Nesting: the inner block wins for what it sets. Bad values raise :class:`ValueError` at the
call that made them, never later inside a model call.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from llmcache_django.core.ttl import ttl_problem

F = TypeVar("F", bound=Callable[..., Any])
#: What a call may ask of the cache: ``refresh`` (don't read; write the new answer),
#: ``no-store`` (read; never write), ``off`` (neither).
MODES = ("refresh", "no-store", "off")
#: The longest scope name: scopes are tenant or user names, not data.
MAX_SCOPE_CHARS = 200
#: The keys a ``{"llm_cache": {...}}`` config metadata value may hold.
METADATA_KEYS = ("mode", "max_age", "ttl", "scope")


@dataclass(frozen=True)
class Directives:
    """What the calls of one block ask of the cache (``None``: not set here)."""

    mode: str | None = None
    max_age: float | None = None
    ttl: float | None = None
    scope: str | None = None
    #: The directives of the enclosing block, restored when this one ends.
    outer: Directives | None = None
    #: A request's directives per ``LLM_CACHES`` alias (its scope, its header's mode), set by
    #: the middleware; what the blocks inside it set wins over them.
    per_alias: Mapping[str, Directives] | None = None

    @property
    def reads(self) -> bool:
        """Whether a lookup may be answered from the cache."""
        return self.mode not in ("refresh", "off")

    @property
    def stores(self) -> bool:
        """Whether an answer may be written (and so whether the call may lead a flight)."""
        return self.mode not in ("no-store", "off")

    def within(self, outer: Directives | None) -> Directives:
        """These directives nested in ``outer``: what this block sets wins, the rest is inherited."""
        if outer is None:
            return self
        return Directives(
            mode=self.mode if self.mode is not None else outer.mode,
            max_age=self.max_age if self.max_age is not None else outer.max_age,
            ttl=self.ttl if self.ttl is not None else outer.ttl,
            scope=self.scope if self.scope is not None else outer.scope,
            outer=outer,
            per_alias=self.per_alias if self.per_alias is not None else outer.per_alias,
        )

    def for_alias(self, alias: str) -> Directives:
        """The directives for a call on ``alias``: the request's for it, under what blocks set."""
        request = self.per_alias.get(alias) if self.per_alias else None
        return self if request is None else Directives(self.mode, self.max_age, self.ttl, self.scope).within(request)


_current: ContextVar[Directives | None] = ContextVar("llmcache_django_control", default=None)


def current() -> Directives | None:
    """The directives in force for this call, or ``None`` (the common case: plain caching)."""
    return _current.get()


def current_for(alias: str) -> Directives | None:
    """The directives in force for a call on ``alias`` (see :meth:`Directives.for_alias`)."""
    given = _current.get()
    return given if given is None or not given.per_alias else given.for_alias(alias)


def directives(mode: str | None = None, *, max_age: Any = None, ttl: Any = None, scope: Any = None) -> Directives:
    """Checked :class:`Directives`; raises :class:`ValueError` naming the allowed values."""
    if mode is not None and mode not in MODES:
        raise ValueError(
            f"llm_cache_control mode {mode!r} is invalid; use one of {', '.join(map(repr, MODES))} or None."
        )
    if max_age is not None and (
        not isinstance(max_age, (int, float)) or isinstance(max_age, bool) or not 0 <= max_age < math.inf
    ):
        raise ValueError(f"llm_cache_control max_age={max_age!r} is invalid; use seconds >= 0, or None.")
    problem = ttl_problem(ttl)
    if problem is not None:
        raise ValueError(f"llm_cache_control ttl={problem}.")
    problem = scope_problem(scope)
    if problem is not None:
        raise ValueError(f"llm_cache_control scope={problem}.")
    return Directives(mode, max_age, ttl, scope)


def scope_problem(scope: Any) -> str | None:
    """Why ``scope`` is not a usable scope name, or ``None`` when it is (or is ``None``)."""
    if scope is None:
        return None
    if not isinstance(scope, str) or not 0 < len(scope) <= MAX_SCOPE_CHARS or not scope.isprintable():
        return f"{scope!r} is invalid; use a printable string of 1 to {MAX_SCOPE_CHARS} characters, or None"
    return None


def from_metadata(value: Any) -> Directives | None:
    """The directives of a LangChain config's ``metadata["llm_cache"]``: a mode
    (``"refresh"``) or a mapping of :data:`METADATA_KEYS`; ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        return directives(value)
    if isinstance(value, Mapping) and set(value) <= set(METADATA_KEYS):
        return directives(
            value.get("mode"), max_age=value.get("max_age"), ttl=value.get("ttl"), scope=value.get("scope")
        )
    raise ValueError(
        f'config metadata "llm_cache"={value!r} is invalid; use one of {", ".join(map(repr, MODES))} '
        f"or a dict with keys among {', '.join(METADATA_KEYS)}."
    )


@contextmanager
def applied(given: Directives | None) -> Iterator[None]:
    """Within this block, ``given`` (nested in what is in force) governs the cache's calls."""
    if given is None:
        yield
        return
    token = _current.set(given.within(_current.get()))
    try:
        yield
    finally:
        _current.reset(token)


class llm_cache_control:
    """Per-call cache directives, as a context manager or a decorator (sync or async).

    ``llm_cache_control("refresh")`` skips the read and stores the new answer (a
    "Regenerate" button); ``"no-store"`` reads but never writes; ``"off"`` does neither;
    ``max_age`` makes older entries misses; ``ttl`` sets how long new entries live;
    ``scope`` partitions the cache (a tenant, a user).
    """

    def __init__(self, mode: str | None = None, *, max_age: Any = None, ttl: Any = None, scope: Any = None) -> None:
        self.directives = directives(mode, max_age=max_age, ttl=ttl, scope=scope)

    def __repr__(self) -> str:
        given = self.directives
        return f"llm_cache_control({given.mode!r}, max_age={given.max_age!r}, ttl={given.ttl!r}, scope={given.scope!r})"

    def __enter__(self) -> Directives:
        nested = self.directives.within(_current.get())
        _current.set(nested)
        return nested

    def __exit__(self, *exc_info: object) -> None:
        # Blocks nest within one context, so the one ending is the one in force: no token
        # to keep, and one instance may be entered from many threads and tasks at once.
        in_force = _current.get()
        _current.set(in_force.outer if in_force is not None else None)

    def __call__(self, function: F) -> F:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def acontrolled(*args: Any, **kwargs: Any) -> Any:
                with applied(self.directives):
                    return await function(*args, **kwargs)

            return cast(F, acontrolled)

        @functools.wraps(function)
        def controlled(*args: Any, **kwargs: Any) -> Any:
            with applied(self.directives):
                return function(*args, **kwargs)

        return cast(F, controlled)
