"""Read the keys a memcached server holds with ``lru_crawler metadump``.

``metadump hash`` (memcached >= 1.6.10) walks the hash table, so it sees every item even
while items move between LRU segments; older servers fall back to ``metadump all``, which
walks the LRUs and can miss an item that moves during the crawl. pymemcache's
``raw_command`` drops data when a reply spans several socket reads, so the dump is read
here over a plain socket of its own.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import unquote

END = b"END\r\n"
BUSY_RETRIES = 20


def dump_keys(server: tuple[str, int] | str, timeout: float = 10.0) -> Iterator[str]:
    """Yield every key on ``server`` (``(host, port)`` or a unix socket path)."""
    for line in _dump(server, timeout).split(b"\n"):
        if line.startswith(b"key="):
            yield unquote(line[4:].split(b" ", 1)[0].decode())


def _dump(server: tuple[str, int] | str, timeout: float) -> bytes:
    try:
        return _dump_with(server, b"lru_crawler metadump hash\r\n", timeout)
    except OSError as exc:
        if "ERROR" not in str(exc):
            raise
        return _dump_with(server, b"lru_crawler metadump all\r\n", timeout)


def _dump_with(server: tuple[str, int] | str, command: bytes, timeout: float) -> bytes:
    for _ in range(BUSY_RETRIES):
        reply = _request(server, command, timeout)
        if not reply.startswith(b"BUSY"):
            if reply.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
                raise OSError(f"memcached cannot list its keys: {reply.strip().decode(errors='replace')}")
            return reply
        time.sleep(0.05)  # another crawl is running on the server
    raise OSError("memcached stayed busy with another lru_crawler request")


def _request(server: tuple[str, int] | str, command: bytes, timeout: float) -> bytes:
    with _connect(server, timeout) as sock:
        sock.sendall(command)
        reply = bytearray()
        while not (reply.endswith(END) or _is_error_line(reply)):
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("memcached closed the connection during a key dump")
            reply += chunk
        return bytes(reply)


def _is_error_line(reply: bytearray) -> bool:
    return reply.endswith(b"\r\n") and reply.startswith((b"BUSY", b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"))


def _connect(server: tuple[str, int] | str, timeout: float) -> socket.socket:
    if isinstance(server, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(server)
        return sock
    return socket.create_connection(server, timeout=timeout)
