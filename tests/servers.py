"""Real redis-server and memcached processes on free loopback ports, for the test suite."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field

#: binary -> the Debian package that provides it.
PACKAGES = {"redis-server": "redis-server", "memcached": "memcached", "chromium": "chromium"}


class MissingBinaryError(RuntimeError):
    """A server binary the tests need is not installed."""


def require_binary(name: str) -> str:
    """Return the path of ``name`` or explain how to install it."""
    path = shutil.which(name)
    if path is None:
        raise MissingBinaryError(
            f"{name} is not installed; the tests use a real one. Install it with "
            f"`apt-get install -y {PACKAGES.get(name, name)}` (or run `make test`, which does)."
        )
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process listening on ``127.0.0.1:port``."""

    name: str
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def location(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0" if self.name == "redis-server" else self.location

    def start(self, argv: list[str]) -> Server:
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_until_listening()
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _wait_until_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"{self.name} exited at start-up: {error}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on port {self.port} within {timeout}s")


def start_redis() -> Server:
    """Start redis-server on a free port: no persistence, loopback only."""
    binary = require_binary("redis-server")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--databases", "16"]
    return Server("redis-server", port).start(argv)


def start_memcached(item_size: str = "1m") -> Server:
    """Start memcached on a free port, loopback only, TCP only."""
    binary = require_binary("memcached")
    port = free_port()
    argv = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-I", item_size]
    if _running_as_root():
        argv += ["-u", "root"]
    return Server("memcached", port).start(argv)


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
