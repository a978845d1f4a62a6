"""Start (or reuse) the local Redis or Memcached server for `make demo-redis|demo-memcached`.

Usage: python -m example_project.local_servers redis|memcached [PORT]
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServerKind:
    """How to start, probe and install one kind of cache server."""

    binary: str
    package: str
    port: int
    probe: bytes
    reply: bytes
    daemon_args: tuple[str, ...]  # "{port}" and "{user}" are filled in

    def command(self, port: int) -> list[str]:
        """The command line that starts this server daemonized on HOST:port."""
        values = {"port": port, "user": getpass.getuser()}
        return [self.binary, *(arg.format(**values) for arg in self.daemon_args)]


REDIS_ARGS = ("--bind", HOST, "--port", "{port}", "--daemonize", "yes", "--save", "", "--appendonly", "no")
# -u only matters as root, where memcached refuses to start without it.
MEMCACHED_ARGS = ("-d", "-l", HOST, "-p", "{port}", "-U", "0", "-u", "{user}")
KINDS = {
    "redis": ServerKind("redis-server", "redis-server", 6379, b"PING\r\n", b"+PONG", REDIS_ARGS),
    "memcached": ServerKind("memcached", "memcached", 11211, b"version\r\n", b"VERSION", MEMCACHED_ARGS),
}


def responds(kind: ServerKind, port: int) -> bool:
    """Whether a server of `kind` answers its ping on HOST:port."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as conn:
            conn.sendall(kind.probe)
            return conn.recv(64).startswith(kind.reply)
    except OSError:
        return False


def ensure_server(name: str, port: int | None = None) -> int:
    """Reuse or start the `name` server; return a shell exit status."""
    kind = KINDS[name]
    port = port or kind.port
    if responds(kind, port):
        print(f"Using the {name} server already running on {HOST}:{port}.")
        return 0
    if shutil.which(kind.binary) is None:
        print(
            f"{kind.binary} is not installed. Install it with: sudo apt-get install "
            f"{kind.package}   (macOS: brew install {name})",
            file=sys.stderr,
        )
        return 1
    subprocess.run(kind.command(port), check=True)
    return _wait_until_up(name, kind, port)


def _wait_until_up(name: str, kind: ServerKind, port: int, seconds: float = 10) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if responds(kind, port):
            print(f"Started {kind.binary} on {HOST}:{port} in the background (it keeps running after the demo stops).")
            return 0
        time.sleep(0.1)
    print(f"{kind.binary} did not answer on {HOST}:{port} within {seconds:.0f}s.", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    """Command-line entry point."""
    if len(argv) not in (1, 2) or argv[0] not in KINDS:
        print(__doc__, file=sys.stderr)
        return 2
    return ensure_server(argv[0], int(argv[1]) if len(argv) == 2 else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
