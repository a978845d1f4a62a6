"""A description of the machine and software a run measured."""

from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata

import llmcache_django
from benchmarks.servers import Server

PACKAGES = (
    "llmcache-django",
    "langchain-core",
    "langchain-community",
    "redis",
    "hiredis",
    "pymemcache",
    "orjson",
    "django",
)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(package: str) -> str:
    """Installed version of a distribution; ours may also run from the source tree."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        if package == "llmcache-django":
            return f"{llmcache_django.__version__} (source tree)"
        return "not installed"


def describe(servers: list[Server]) -> dict[str, str]:
    """Machine, OS, Python, servers and package versions, for the report header."""
    found = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu_model()} ({os.cpu_count()} cores)",
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    found.update({server.name: server.version for server in servers})
    found.update({package: version(package) for package in PACKAGES})
    return found
