"""Start (or reuse) the local Redis or Memcached server for `make demo-redis|demo-memcached`.

Usage: python -m example_project.local_servers redis|memcached [PORT]
       python -m example_project.local_servers stop

A server started here writes its pid under ``RUN_DIR``; ``stop`` (`make demo-stop`) stops
those servers and no other: a server that was already running is reused and left alone.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
#: Where the servers started here record their pids (ignored by git).
RUN_DIR = Path(__file__).resolve().parent / ".run"


@dataclass(frozen=True)
class ServerKind:
    """How to start, probe and install one kind of cache server."""

    binary: str
    package: str
    port: int
    probe: bytes
    reply: bytes
    daemon_args: tuple[str, ...]  # "{port}", "{user}" and "{pidfile}" are filled in

    def command(self, port: int) -> list[str]:
        """The command line that starts this server daemonized on HOST:port, recording its pid."""
        values = {"port": port, "user": getpass.getuser(), "pidfile": pidfile(self.binary, port)}
        return [self.binary, *(arg.format(**values) for arg in self.daemon_args)]


REDIS_ARGS = (
    *("--bind", HOST, "--port", "{port}", "--daemonize", "yes", "--pidfile", "{pidfile}"),
    *("--save", "", "--appendonly", "no"),
)
# -u only matters as root, where memcached refuses to start without it.
MEMCACHED_ARGS = ("-d", "-l", HOST, "-p", "{port}", "-U", "0", "-u", "{user}", "-P", "{pidfile}")
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
    RUN_DIR.mkdir(exist_ok=True)
    subprocess.run(kind.command(port), check=True)
    return _wait_until_up(name, kind, port)


def pidfile(binary: str, port: int) -> Path:
    """Where the `binary` server started here on `port` writes its pid."""
    return RUN_DIR / f"{binary}-{port}.pid"


def stop_servers(seconds: float = 10) -> int:
    """Stop every server started by :func:`ensure_server`; return a shell exit status."""
    pidfiles = sorted(RUN_DIR.glob("*.pid")) if RUN_DIR.is_dir() else []
    status, stopped = 0, 0
    for path in pidfiles:
        binary, _, port = path.stem.rpartition("-")
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if not _runs(pid, binary):
            path.unlink(missing_ok=True)  # stopped some other way; the pid may belong to another program now
            continue
        os.kill(pid, signal.SIGTERM)
        if _wait_until_gone(pid, seconds):
            print(f"Stopped {binary} on {HOST}:{port} (pid {pid}).")
            path.unlink(missing_ok=True)
            stopped += 1
        else:
            print(f"{binary} (pid {pid}) did not stop within {seconds:.0f}s.", file=sys.stderr)
            status = 1
    if not stopped and not status:
        print("No server started by make demo-redis or make demo-memcached is running.")
    return status


def _runs(pid: int, binary: str) -> bool:
    """Whether process `pid` is still the `binary` server (a pid can be reused after a stop)."""
    if Path("/proc/self").exists():
        try:
            return binary in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
    try:  # no /proc (macOS): the pid file is all there is
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _wait_until_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _wait_until_up(name: str, kind: ServerKind, port: int, seconds: float = 10) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if responds(kind, port):
            print(f"Started {kind.binary} on {HOST}:{port} in the background; `make demo-stop` stops it.")
            return 0
        time.sleep(0.1)
    print(f"{kind.binary} did not answer on {HOST}:{port} within {seconds:.0f}s.", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    """Command-line entry point."""
    if argv == ["stop"]:
        return stop_servers()
    if len(argv) not in (1, 2) or argv[0] not in KINDS:
        print(__doc__, file=sys.stderr)
        return 2
    return ensure_server(argv[0], int(argv[1]) if len(argv) == 2 else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
