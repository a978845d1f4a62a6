"""On SIGTERM (systemd, Kubernetes, ``docker stop``), counts are flushed before the process goes.

Our handler runs in front of the one it found, then hands the signal on to it:

- a host handler (uvicorn's graceful shutdown, a framework's): counts pending now are
  flushed, and from then on each request flushes its counts as it finishes
  (:func:`flush_if_stopping` on ``request_finished``), so the requests uvicorn lets finish
  are counted too, though uvicorn then re-raises SIGTERM with the default handler back in
  place and ``atexit`` never runs;
- the default handler (a plain Python process: a script, a queue worker without its own
  handler): counts are flushed and single-flight leases given up, then the default handler
  is put back and the signal raised again, so the process still dies of SIGTERM;
- ``SIG_IGN``: nothing (the process is not ending).

It is installed from the main thread only (Python's rule for signal handlers), by
``AppConfig.ready()`` and when a cache is built there. A host that installs its own handler
later (gunicorn's and Celery's workers) replaces ours; they exit through ``sys.exit``, where
the ``atexit`` flush runs. The work runs in a helper thread the handler waits for at most
:data:`FINISH_SECONDS`: a handler interrupts the main thread anywhere, even inside a lock
the flush needs.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger("llmcache_django")
#: The longest a SIGTERM waits for the flush (and lease release) before it goes on.
FINISH_SECONDS = 5.0
_previous: Callable[[int, FrameType | None], Any] | int | None = None
_installed = False
_stopping = threading.Event()


def install() -> None:
    """Put our handler in front of the current SIGTERM handler (once; main thread only)."""
    global _previous, _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is None or current is _on_sigterm:  # None: installed outside Python, cannot be chained
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    _previous, _installed = current, True


def stopping() -> bool:
    """Whether this process has received SIGTERM."""
    return _stopping.is_set()


def flush_if_stopping(**kwargs: Any) -> None:
    """``request_finished`` receiver: once SIGTERM came, each request flushes its counts."""
    if _stopping.is_set():
        from llmcache_django.core.exit_flush import flush_all

        flush_all()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    previous = _previous
    if previous == signal.SIG_IGN:
        return
    _stopping.set()
    ending = not callable(previous)  # the default handler: the process dies as soon as we return
    _finish_within(FINISH_SECONDS, release_leases=ending)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _finish_within(seconds: float, *, release_leases: bool) -> None:
    from llmcache_django.core.exit_flush import finish_process, flush_all

    helper = threading.Thread(target=finish_process if release_leases else flush_all, name="llmcache-sigterm")
    helper.daemon = True
    helper.start()
    helper.join(seconds)
    if helper.is_alive():
        logger.warning("LLM cache: counts not all saved on SIGTERM within %s s", seconds)
