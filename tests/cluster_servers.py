"""A real Redis Cluster on loopback: 3 primaries with one replica each, for the test suite."""

from __future__ import annotations

import random
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from tests.servers import QUICK_SYNC, Server, require_binary

#: Node timeout (ms): how long before a dead primary's replica is promoted.
NODE_TIMEOUT_MS = 1000


@dataclass
class Cluster:
    """The servers of a running cluster; ``urls`` are its startup nodes."""

    servers: list[Server] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{server.port}" for server in self.servers]

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_cluster(primaries: int = 3, replicas: int = 1, *, failover: bool = True) -> Cluster:
    """Start ``primaries`` * (1 + ``replicas``) cluster-enabled redis-servers, create the cluster and
    wait until every node says ``cluster_state:ok``.

    Without ``failover``, replicas are never promoted and the other primaries go on serving
    while one is down: a dead primary stays the primary of its slots for as long as a test
    needs to look at it, instead of racing the node timeout.
    """
    cli = require_binary("redis-cli")
    cluster = Cluster()
    pinned = [] if failover else ["--cluster-replica-no-failover", "yes", "--cluster-require-full-coverage", "no"]
    try:
        for _ in range(primaries * (1 + replicas)):
            cluster.servers.append(start_cluster_node(*pinned))
        nodes = [server.location for server in cluster.servers]
        argv = [cli, "--cluster", "create", *nodes, "--cluster-replicas", str(replicas), "--cluster-yes"]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
        for server in cluster.servers:
            wait_for_cluster_ok(server.port)
        wait_for_replicas(cluster.servers[0].port, primaries * replicas)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_for_cluster_ok(port: int, timeout: float = 30.0) -> None:
    """Wait until the node on ``port`` reports ``cluster_state:ok``."""
    cli = require_binary("redis-cli")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run([cli, "-p", str(port), "cluster", "info"], capture_output=True, timeout=5, text=True)
        if "cluster_state:ok" in done.stdout:
            return
        time.sleep(0.1)
    raise RuntimeError(f"Redis Cluster node {port} did not reach cluster_state:ok within {timeout}s")


def start_cluster_node(*options: str) -> Server:
    """Start one cluster-enabled redis-server (no persistence, loopback only) on a free port,
    with further ``redis-server`` command-line ``options``."""
    binary = require_binary("redis-server")
    port = cluster_port()
    directory = tempfile.mkdtemp(prefix="llmcache-cluster-")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *QUICK_SYNC]
    argv += ["--dir", directory, "--cluster-enabled", "yes", "--cluster-config-file", f"{directory}/nodes.conf"]
    argv += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS), *options]
    return Server("redis-server", port, directory=directory).start(argv)


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too (and below 65536)."""
    for _ in range(200):
        port = random.randint(20000, 50000)
        if _is_free(port) and _is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_replicas(port: int, expected: int, timeout: float = 30.0) -> None:
    """Wait until the cluster seen from ``port`` has ``expected`` replicas in sync with their primaries."""
    import redis

    node = redis.Redis(port=port)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            in_sync = sum(len(shard[3:]) for shard in node.execute_command("CLUSTER", "SLOTS"))
            if in_sync >= expected:
                return
            time.sleep(0.1)
    finally:
        node.close()
    raise RuntimeError(f"Redis Cluster replicas did not join within {timeout}s")
