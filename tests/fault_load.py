"""A bounded load of real model calls through a cache, for fault tests: warmed prompts (which
should hit) and new prompts (misses), from a few threads, while a test kills and restores servers.

The figures (failed calls, the longest single call after the fault, the time until warmed
prompts hit again: the end of the last warmed miss) are measured and printed, not asserted: the
tests assert no call failed and that every warmed prompt hit again.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.language_models import FakeListChatModel


class NumberedAnswersModel(FakeListChatModel):
    """A ``FakeListChatModel`` whose every real call answers with a new number: an answer seen
    before for the same prompt can only have come from the cache."""

    calls: Any = None  # an itertools.count shared by the model's threads

    def _call(self, *args: Any, **kwargs: Any) -> str:
        return f"answer {next(self.calls)}"


@dataclass
class Call:
    started: float
    seconds: float
    warmed: bool
    hit: bool
    error: BaseException | None = None


@dataclass
class FaultLoad:
    """Threads invoking a :class:`NumberedAnswersModel` on ``cache``, ``pause`` seconds apart;
    with ``async_threads``, that many more run ``ainvoke`` on an event loop each."""

    cache: BaseCache
    threads: int = 4
    async_threads: int = 0
    warmed_prompts: int = 20
    pause: float = 0.01
    calls: list[Call] = field(default_factory=list)
    fault_at: float | None = None

    def __post_init__(self) -> None:
        self.model = NumberedAnswersModel(responses=["unused"], cache=self.cache, calls=itertools.count())
        self.answers: dict[str, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._work, daemon=True) for _ in range(self.threads)]
        self._workers += [
            threading.Thread(target=asyncio.run, args=(self._async_work(),), daemon=True)
            for _ in range(self.async_threads)
        ]
        self._new_prompts = itertools.count()

    def warm(self) -> None:
        """Store an answer for every warmed prompt (a call each), and check each now hits."""
        for n in range(self.warmed_prompts):
            prompt = f"warmed {n}"
            self.answers[prompt] = str(self.model.invoke(prompt).content)
            assert self.model.invoke(prompt).content == self.answers[prompt], "a warmed prompt did not hit"

    def start(self) -> FaultLoad:
        self.warm()
        for worker in self._workers:
            worker.start()
        return self

    def fault(self) -> None:
        """Mark the moment the fault began (call just before killing a server)."""
        self.fault_at = time.monotonic()

    def wait_for_hits(self, seconds: float, confirm: float = 2.0) -> bool:
        """Wait (bounded) until every warmed prompt has hit for ``confirm`` seconds since the
        last warmed miss after the fault."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            last_miss = self._last_warmed_miss()
            if time.monotonic() - last_miss >= confirm and self._warmed_hits_since(last_miss) >= self.warmed_prompts:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> FaultLoad:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)
        return self

    @property
    def failed(self) -> list[Call]:
        return [call for call in self.calls if call.error is not None]

    def longest_call_after_fault(self) -> float:
        assert self.fault_at is not None
        return max((call.seconds for call in self.calls if call.started >= self.fault_at), default=0.0)

    def hits_resumed_after(self) -> float:
        """Seconds from the fault to the end of the last warmed miss (0 if none missed)."""
        assert self.fault_at is not None
        return self._last_warmed_miss() - self.fault_at

    def _last_warmed_miss(self) -> float:
        assert self.fault_at is not None
        with self._lock:
            ends = [call.started + call.seconds for call in self.calls if call.warmed and not call.hit]
        return max([end for end in ends if end >= self.fault_at], default=self.fault_at)

    def _warmed_hits_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.warmed and call.hit and call.started > moment)

    def report(self, what: str) -> str:
        line = (
            f"{what}: {len(self.calls)} model calls, {len(self.failed)} failed, longest call after the fault "
            f"{self.longest_call_after_fault():.3f} s, every warmed prompt hit again "
            f"{self.hits_resumed_after():.2f} s after the fault"
        )
        print(f"\n{line}")  # reported, not asserted
        return line

    def _work(self) -> None:
        for turn in itertools.count():
            if self._stop.is_set():
                return
            prompt, started = self._prompt(turn), time.monotonic()
            try:
                self._record(prompt, started, str(self.model.invoke(prompt).content))
            except Exception as exc:  # the assertion is that there are none
                self._record(prompt, started, None, exc)
            time.sleep(self.pause)

    async def _async_work(self) -> None:
        for turn in itertools.count():
            if self._stop.is_set():
                return
            prompt, started = self._prompt(turn), time.monotonic()
            try:
                self._record(prompt, started, str((await self.model.ainvoke(prompt)).content))
            except Exception as exc:
                self._record(prompt, started, None, exc)
            await asyncio.sleep(self.pause)

    def _prompt(self, turn: int) -> str:
        if turn % 2 == 0:
            return f"warmed {turn // 2 % self.warmed_prompts}"
        return f"new {next(self._new_prompts)}"

    def _record(self, prompt: str, started: float, answer: str | None, error: BaseException | None = None) -> None:
        warmed = prompt in self.answers
        call = Call(started, time.monotonic() - started, warmed, warmed and answer == self.answers[prompt], error)
        with self._lock:
            self.calls.append(call)


def _start(call: Call) -> float:
    return call.started
