"""The LangChain model runs a miss belongs to, so a flight ends when its run ends without an update.

A callback handler on every LangChain run (installed once, with ``register_configure_hook``,
when the first single-flight cache is built) keeps, in each context, the model runs started
there and not yet ended. A flight a miss leads is tied to them — whatever wrapper, decorator
or user ``BaseCache`` the lookup went through. A text-completion model looks its prompts up
before its runs start, so a flight led outside any run waits, in its context, for the next
text-completion run that starts there. When a run fails, or a chat run ends (its update is
done by then; a text-completion model's comes after its run ends), the flights still tied to
it end: their waiters call the model themselves at once.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any, Protocol
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook


class Led(Protocol):
    """A flight as a run sees it: ended yet, and how to end it without a value."""

    closed: bool

    def abandon(self) -> None: ...


#: The model runs open in this context, most recent last.
_open: ContextVar[tuple[UUID, ...]] = ContextVar("llmcache_django_open_runs", default=())
#: Flights led in this context outside any run, for the next text-completion run to take.
_untied: ContextVar[tuple[Led, ...]] = ContextVar("llmcache_django_untied_flights", default=())
#: Runs started and not yet ended, in this process: run id -> whether it is a chat run.
_live: dict[UUID, bool] = {}
#: run id -> the flights tied to it (kept to the open ones).
_tied: dict[UUID, list[Led]] = {}
_lock = threading.Lock()
#: Bounds on what is remembered of runs whose end is never seen (a sync batch that raised does
#: not end its other runs): a run forgotten is one whose flights end at the wait bound.
MAX_OPEN_RUNS = 16
MAX_UNTIED = 64
MAX_LIVE_RUNS = 4096
#: A run's list of flights is pruned of ended ones when it grows past this.
PRUNE_TIED = 32


def tie(flight: Led) -> None:
    """Tie a flight this context just started leading to the model runs open here."""
    runs = _open.get()
    with _lock:
        live = tuple(run_id for run_id in runs if run_id in _live)
        for run_id in live:
            tied = _tied.setdefault(run_id, [])
            if len(tied) >= PRUNE_TIED:
                tied[:] = [other for other in tied if not other.closed]
            tied.append(flight)
    if live != runs:
        _open.set(live)  # runs that ended in another context (a stream read on another thread)
    if not live:
        _untied.set((*_untied.get()[-(MAX_UNTIED - 1) :], flight))


def started(run_id: UUID, *, chat: bool) -> None:
    """A model run started in this context; a text-completion run takes the flights led here before it."""
    with _lock:
        if len(_live) >= MAX_LIVE_RUNS:
            _forget_oldest()
        _live[run_id] = chat
    _open.set((*_open.get()[-(MAX_OPEN_RUNS - 1) :], run_id))
    untied = _untied.get()
    if untied and not chat:
        _untied.set(())
        with _lock:
            _tied.setdefault(run_id, []).extend(flight for flight in untied if not flight.closed)


def _forget_oldest() -> None:
    for run_id in list(_live)[: MAX_LIVE_RUNS // 2]:
        del _live[run_id]
        _tied.pop(run_id, None)


def ended(run_id: UUID, *, failed: bool) -> None:
    """A model run ended: end the flights tied to it that no update ended (see the module docstring)."""
    runs = _open.get()
    if run_id in runs:
        _open.set(tuple(open_id for open_id in runs if open_id != run_id))
    with _lock:
        chat = _live.pop(run_id, False)
        tied = _tied.pop(run_id, None)
    if tied is not None and (failed or chat):
        for flight in tied:
            flight.abandon()


class FlightRunHandler(BaseCallbackHandler):
    """Tells single-flight when model runs start and end (inline: in the run's own context)."""

    run_inline = True
    # Model runs only: chains, agents, retrievers, retries and custom events are not its business.
    ignore_chain = ignore_agent = ignore_retriever = ignore_retry = ignore_custom_event = True

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        started(run_id, chat=True)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **kwargs: Any) -> None:
        started(run_id, chat=False)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        ended(run_id, failed=False)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        ended(run_id, failed=True)


#: The hook's variable: set by default in every context (and thread), so every run gets the
#: handler; it holds no state of its own, so one instance is shared.
_handler: ContextVar[FlightRunHandler | None] = ContextVar(
    "llmcache_django_flight_runs",
    default=FlightRunHandler(),  # noqa: B039
)
_installed = False


def install() -> None:
    """Put :class:`FlightRunHandler` on every LangChain run from now on (once per process)."""
    global _installed
    with _lock:
        if not _installed:
            register_configure_hook(_handler, True)
            _installed = True
