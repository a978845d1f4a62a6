"""Real redis-server and memcached processes on free loopback ports, for the test suite."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: binary -> the Debian package that provides it.
PACKAGES = {
    "redis-server": "redis-server",
    "redis-sentinel": "redis-sentinel",
    "redis-cli": "redis-tools",
    "memcached": "memcached",
    "chromium": "chromium",
    "openssl": "openssl",
}


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
    #: A scratch directory of the server's own, removed by :meth:`stop`.
    directory: str | None = field(default=None, repr=False)

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
        """Kill the process (SIGKILL: every server here is a throwaway, nothing to save, and
        memcached acts on SIGTERM only at its next one-second tick) and remove its directory.
        A paused (SIGSTOP) process is killed too."""
        self.kill()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def kill(self) -> None:
        """Kill the process outright (SIGKILL), as a crash would; :meth:`stop` still cleans up."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _wait_until_listening(self, timeout: float = 60.0) -> None:
        # Generous: a server (uvicorn importing Django and LangChain) starts in seconds on a
        # loaded machine; the deadline only keeps a server that never listens from hanging the run.
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


#: A primary syncs a new replica at once (not 5 s later, waiting for more replicas to share a
#: diskless sync) and pings its replicas every second (not 10): until that first ping a replica's
#: offset is 0 and a cluster leaves it out of CLUSTER SLOTS, which made a cluster's start ~10 s.
QUICK_SYNC = ["--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"]


def start_redis(*options: str) -> Server:
    """Start redis-server on a free port: no persistence, loopback only, plus ``options``."""
    binary = require_binary("redis-server")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--databases", "16"]
    argv += QUICK_SYNC
    directory = tempfile.mkdtemp(prefix="llmcache-redis-")
    return Server("redis-server", port, directory=directory).start([*argv, "--dir", directory, *options])


#: The service name the suite's sentinels watch.
SENTINEL_SERVICE = "llmcache-primary"


def wait_for_replication(replica: Server, seconds: float = 10.0) -> None:
    """Wait (bounded) until ``replica`` is linked to its primary and has every write it made."""
    import redis

    client = redis.Redis(port=replica.port)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info = client.info("replication")
        if info.get("master_link_status") == "up":
            primary = redis.Redis(host=info["master_host"], port=info["master_port"])
            if primary.info("replication")["master_repl_offset"] == info["slave_repl_offset"]:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the replica on port {replica.port} did not catch up within {seconds}s")


def wait_for_sentinel_to_see(
    watcher: Server, replica: Server, seconds: float = 30.0, service: str = SENTINEL_SERVICE
) -> None:
    """Wait (bounded) until the sentinel knows ``replica`` as a replica in sync that it could
    promote (it reads the primary's and the replicas' INFO every 10 s)."""
    import redis

    sentinel = redis.Redis(port=watcher.port)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(_promotable(found, replica) for found in sentinel.sentinel_slaves(service)):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the sentinel on port {watcher.port} did not see the replica on {replica.port} in {seconds}s")


def _promotable(found: dict[str, object], replica: Server) -> bool:
    healthy = found.get("is_slave") and not found.get("is_sdown") and found.get("master-link-status") == "ok"
    return bool(healthy) and int(str(found["port"])) == replica.port


def start_redis_tls(certificates: Certificates) -> Server:
    """Start redis-server speaking TLS only, on a free loopback port, requiring client certificates."""
    binary = require_binary("redis-server")
    port = free_port()
    argv = [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    directory = tempfile.mkdtemp(prefix="llmcache-redis-")
    argv += ["--dir", directory]
    argv += ["--tls-cert-file", str(certificates.server_cert), "--tls-key-file", str(certificates.server_key)]
    argv += ["--tls-ca-cert-file", str(certificates.ca_cert), "--tls-auth-clients", "yes"]
    return Server("redis-server", port, directory=directory).start(argv)


def sentinel_cache_settings(watcher: Server, db: int = 0, **options: object) -> dict[str, object]:
    """A django-redis ``CACHES`` entry on the sentinel ``watcher``'s service."""
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://{SENTINEL_SERVICE}/{db}",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "SENTINELS": [("127.0.0.1", watcher.port)],
            "SOCKET_TIMEOUT": 1,
            **options,
        },
    }


def start_sentinel_group(directory: Path, service: str = SENTINEL_SERVICE) -> tuple[Server, Server, Server]:
    """A primary, its replica in sync, and a sentinel watching them as ``service`` that already
    sees the replica as promotable: ``(primary, replica, watcher)``.

    The sentinel starts once the replica is in sync, so its first look at the primary lists
    the replica (started before, it would only learn of it at its next INFO poll, 10 s later).
    """
    primary = start_redis()
    started = [primary]
    try:
        replica = start_redis("--replicaof", "127.0.0.1", str(primary.port))
        started.append(replica)
        wait_for_replication(replica)
        watcher = start_sentinel(directory, service, primary)
        started.append(watcher)
        wait_for_sentinel_to_see(watcher, replica, service=service)
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    return primary, replica, watcher


def start_sentinel(directory: Path, service: str, primary: Server) -> Server:
    """Start redis-sentinel on a free loopback port, watching ``primary`` as ``service``."""
    binary = require_binary("redis-sentinel")
    port = free_port()
    config = directory / f"sentinel-{port}.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {service} 127.0.0.1 {primary.port} 1\n"
        f"sentinel down-after-milliseconds {service} 1000\nsentinel failover-timeout {service} 2000\n"
    )
    return Server("redis-sentinel", port).start([binary, str(config)])


@dataclass
class Certificates:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate, whose
    private key is also kept encrypted with ``client_key_password``."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    encrypted_client_key: Path
    client_key_password: str = "client-key-secret"


def make_certificates(directory: Path) -> Certificates:
    """Create :class:`Certificates` in ``directory`` with openssl (EC keys: fast)."""
    openssl = require_binary("openssl")
    files = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key", "client-encrypted.key")
    names = Certificates(*(directory / name for name in files))
    ca_key, extensions = directory / "ca.key", directory / "san.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(openssl, "req", "-x509", *new_key, "-keyout", ca_key, "-out", names.ca_cert, "-days", "2", "-subj", "/CN=ca")
    for cert, key, subject in (
        (names.server_cert, names.server_key, "/CN=127.0.0.1"),
        (names.client_cert, names.client_key, "/CN=client"),
    ):
        request = cert.with_suffix(".csr")
        _run(openssl, "req", *new_key, "-keyout", key, "-out", request, "-subj", subject)
        signing = ["-CA", names.ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-days", "2", "-extfile", extensions]
        _run(openssl, "x509", "-req", "-in", request, *signing, "-out", cert)
    password = f"pass:{names.client_key_password}"
    _run(openssl, "pkey", "-in", names.client_key, "-aes256", "-passout", password, "-out", names.encrypted_client_key)
    return names


def _run(*argv: object) -> None:
    subprocess.run([str(arg) for arg in argv], check=True, capture_output=True, timeout=30)


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
