"""Everything one run measured, with the look-ups the report and the targets need."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.cases import Latency, Stored
from benchmarks.concurrency import Throughput
from benchmarks.directives import DirectiveOverhead
from benchmarks.single_flight import SingleFlightResults
from benchmarks.stats_overhead import StatsOverhead
from benchmarks.streaming import StreamingResults


@dataclass
class Measurements:
    """The results of one benchmark run."""

    machine: dict[str, str]
    latencies: list[Latency] = field(default_factory=list)
    stored: list[Stored] = field(default_factory=list)
    throughputs: list[Throughput] = field(default_factory=list)
    end_to_end: list[Latency] = field(default_factory=list)
    stats: StatsOverhead | None = None
    directives: DirectiveOverhead | None = None
    streaming: StreamingResults | None = None
    single_flight: SingleFlightResults | None = None
    logged: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def median(self, backend: str, payload: str, op: str, contender: str) -> float:
        """Median microseconds of one latency cell."""
        for row in self.latencies + self.end_to_end:
            if (row.backend, row.payload, row.op, row.contender) == (
                backend,
                payload,
                op,
                contender,
            ):
                return row.summary.median_us
        raise KeyError((backend, payload, op, contender))

    def throughput(self, level: int, contender: str) -> Throughput:
        """Concurrency result of one contender at one level."""
        return next(t for t in self.throughputs if (t.level, t.contender) == (level, contender))

    def stored_for(self, backend: str, payload: str) -> Stored:
        """What ours and upstream wrote for one payload."""
        return next(s for s in self.stored if (s.backend, s.payload) == (backend, payload))
