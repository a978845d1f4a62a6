"""Fail-open error handling: log once per burst, count every time, never raise."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("llmcache_django")

#: Within this many seconds of a logged error, further errors are only counted.
BURST_SECONDS = 60.0


class ErrorReporter:
    """Logs the first error of a burst and how many were suppressed since the last log."""

    def __init__(self, name: str, burst_seconds: float = BURST_SECONDS) -> None:
        self.name = name
        self.burst_seconds = burst_seconds
        self._last_logged = float("-inf")
        self._suppressed = 0

    def report(self, operation: str, exc: BaseException) -> None:
        """Record that ``operation`` failed with ``exc``; log it unless a burst is under way."""
        now = time.monotonic()
        if now - self._last_logged < self.burst_seconds:
            self._suppressed += 1
            return
        suppressed, self._suppressed, self._last_logged = self._suppressed, 0, now
        more = f" ({suppressed} similar errors suppressed)" if suppressed else ""
        logger.warning(
            "LLM cache %r: %s failed, carrying on without the cache: %s: %s%s",
            self.name,
            operation,
            type(exc).__name__,
            exc,
            more,
        )
