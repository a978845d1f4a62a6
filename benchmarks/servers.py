"""Throw-away redis-server and memcached processes on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Server:
    """A running server process listening on HOST:port."""

    name: str
    port: int
    version: str


def free_port() -> int:
    """Ask the kernel for a free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def binary(name: str) -> str:
    """Path of a server binary, or a clear error telling how to install it."""
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"`{name}` not found on PATH; install it (e.g. apt-get install {name}).")
    return path


def wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Block until the port accepts connections or the process dies."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"server on port {port} did not start within {START_TIMEOUT}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server process, killing it if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running(name: str, command: list[str], port: int, version: str) -> Iterator[Server]:
    """Start `command`, yield once it listens on `port`, always stop it."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(process, port)
        yield Server(name=name, port=port, version=version)
    finally:
        stop(process)


def version_of(command: list[str]) -> str:
    """First line of a binary's version output."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).splitlines()[0].strip()


def redis_server() -> contextlib.AbstractContextManager[Server]:
    """A redis-server with persistence off, bound to loopback."""
    path, port = binary("redis-server"), free_port()
    command = [path, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    return running("redis", command, port, version_of([path, "--version"]))


def memcached() -> contextlib.AbstractContextManager[Server]:
    """A memcached with UDP off, bound to loopback (runs as root only if we are root)."""
    path, port = binary("memcached"), free_port()
    command = [path, "-l", HOST, "-p", str(port), "-U", "0", "-m", "256"]
    if os.geteuid() == 0:
        command += ["-u", "root"]
    return running("memcached", command, port, version_of([path, "-V"]))
