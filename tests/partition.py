"""A loopback TCP relay in front of a real server, to cut the network to it and heal it again.

A killed memcached comes back empty; a partitioned one comes back with every key it held,
which is the case a clear that could not reach it must survive.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.servers import Server, free_port


class Partition:
    """Relays ``127.0.0.1:port`` to ``server``; :meth:`cut` refuses and drops connections."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self.heal()

    @property
    def location(self) -> str:
        return f"127.0.0.1:{self.port}"

    def heal(self) -> None:
        """Accept connections again and relay them."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones; the server keeps running, keys and all."""
        with self._lock:
            if self._listener is not None:
                _close(self._listener)  # shutdown first: a close alone leaves a blocked accept() accepting
                self._listener = None
            for connection in self._connections:
                _close(connection)
            self._connections = []

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(("127.0.0.1", self.server.port))
            with self._lock:
                self._connections += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    _close(source)
    _close(target)


def _close(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()
