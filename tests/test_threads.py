"""Threads share a process's caches: 8 threads for 5 s on every kind of cache at once.

The run is a subprocess (``tests/thread_worker.py``), so a crash — python-zstandard contexts
shared between threads ended the process with a segmentation fault — fails this test instead
of ending the test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CACHE_KINDS, cache_settings, direct_address

ROOT = Path(__file__).resolve().parent.parent


def test_eight_threads_for_five_seconds_on_every_kind_get_every_answer_right(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    aliases = {kind: cache_settings(kind, request) for kind in CACHE_KINDS if kind.startswith("alias-")}
    direct = {kind: direct_address(kind, request) for kind in CACHE_KINDS if not kind.startswith("alias-")}
    spec = {"seconds": 5, "threads": 8, "directory": str(tmp_path), "aliases": aliases, "direct": direct}
    run = subprocess.run(
        [sys.executable, "-m", "tests.thread_worker"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert run.returncode == 0, f"exit code {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["wrong"] == []
    assert sorted(report["calls"]) == sorted(CACHE_KINDS)  # every kind was called ...
    assert all(hits > 0 for hits in report["hits"].values()), report["hits"]  # ... and answered from the cache
