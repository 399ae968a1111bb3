"""The agent's network under bwrap: only the egress proxy's allowlist, with real bubblewrap.

The adversarial agent (tests/net_agent.py) tries hookagent's API port and the Valkey the
worker uses, straight and through the proxy, the metadata address, a host on no list. The
API here is a real listener on all interfaces, so a breach shows on its side too. Valkey
listens on TCP (an embedded one with a data dir too long for a unix socket path).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shlex
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from hookagent.cli.embedded import EmbeddedValkey
from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.sandbox import SANDBOX_HOME, Egress, probe, proxy_environment, wrap
from tests.conftest import RunWorker
from tests.helpers import FIXTURES, wait_status

UNUSABLE = probe(network=True)
pytestmark = pytest.mark.skipif(
    UNUSABLE is not None, reason=f"bubblewrap cannot sandbox on this machine: {UNUSABLE}"
)
NET_AGENT = Path(__file__).parent.parent / "net_agent.py"
PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Valkey on loopback TCP, the port the agent tries (sun_path cannot hold this dir)."""
    deep = tmp_path_factory.mktemp("valkey-tcp") / ("d" * 60) / ("e" * 60)
    with EmbeddedValkey(deep) as valkey:
        assert valkey.url.startswith("redis://127.0.0.1:"), valkey.url
        yield valkey.url


class Listener:
    """A real HTTP server on ``host``: answers ``reached NAME`` and counts its visitors."""

    def __init__(self, name: str, host: str) -> None:
        self.visits: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                return

            def do_GET(self) -> None:
                listener.visits.append(self.path)
                body = f"reached {name}".encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def api() -> Iterator[Listener]:
    """Stands for hookagent's API, on every interface as in a container."""
    with Listener("hookagent-api", "0.0.0.0") as server:
        yield server


@pytest.fixture
def allowed() -> Iterator[Listener]:
    """A service on the allowlist (as an operator's package mirror would be)."""
    with Listener("allowed-service", "127.0.0.1") as server:
        yield server


def host_addresses() -> list[str]:
    """This machine's IPv4 addresses besides loopback (the kernel's local routing table)."""
    found: list[str] = []
    lines = Path("/proc/net/fib_trie").read_text().splitlines()
    for previous, line in itertools.pairwise(lines):
        if "/32 host LOCAL" in line:
            address = previous.split()[-1]
            if not address.startswith("127.") and address not in found:
                found.append(address)
    return found


def command(mode: str, *args: str) -> str:
    """The HOOKAGENT_AGENT_COMMAND running the network agent in ``mode``."""
    return shlex.join([sys.executable, str(NET_AGENT), mode, *args])


async def submit(client: httpx.AsyncClient) -> str:
    payload = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())
    payload["data"]["event"]["issue_id"] = uuid.uuid4().hex
    response = await client.post("/webhooks/sentry", json=payload)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def run_probe(client: httpx.AsyncClient, store: Store) -> list[str]:
    """One planning run of the probing agent; its log's messages."""
    task_id = await submit(client)
    assert await wait_status(store, task_id, PLANNED, timeout=60) is TaskStatus.PENDING_APPROVAL
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return [e.message for e in entries]


def result(log: list[str], kind: str, target: str) -> str:
    """What the agent printed for one attempt."""
    prefix = f"[stdout] {kind} {target}: "
    found = [m.removeprefix(prefix) for m in log if m.startswith(prefix)]
    assert len(found) == 1, (kind, target, log)
    return found[0]


async def test_the_agent_reaches_only_the_allowlist(
    client: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    start_worker: RunWorker,
    api: Listener,
    allowed: Listener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis_port = urlsplit(settings.redis_url).port
    ours = [f"127.0.0.1:{api.port}", f"127.0.0.1:{redis_port}"]
    ours += [f"{address}:{port}" for address in host_addresses() for port in (api.port, redis_port)]
    stub = f"127.0.0.1:{allowed.port}"
    # Every one of hookagent's endpoints and the metadata address are listed too: the lists
    # cannot open them.
    listed = [stub, *ours, "localhost", "0.0.0.0", "169.254.169.254", "metadata.google.internal"]
    listed.append("*.example.com")
    start_worker(
        agent_command=command("probe"),
        sandbox="bwrap",
        agent_env="NET_*",
        port=api.port,
        egress_allow=",".join(listed),
    )
    refused = [
        *ours,
        "localhost:" + str(redis_port),
        f"[::ffff:127.0.0.1]:{redis_port}",
        "169.254.169.254:80",
        "metadata.google.internal:80",
        "not-listed.invalid:443",
    ]
    monkeypatch.setenv("NET_DIRECT", ",".join([*ours, stub]))
    monkeypatch.setenv("NET_CONNECT", ",".join([*refused, stub]))
    gets = [f"http://127.0.0.1:{api.port}/", "http://169.254.169.254/latest/meta-data/"]
    gets += [f"http://0.0.0.0:{api.port}/", f"http://{stub}/ok"]
    monkeypatch.setenv("NET_GET", ",".join(gets))
    log = await run_probe(client, store)

    # Straight out: nothing but loopback in the agent's namespace, and nothing listens there.
    for target in [*ours, stub]:
        assert result(log, "direct", target).startswith("failed "), log
    # Through the proxy: refused, each in the task's log, never reaching the API.
    for target in refused:
        assert result(log, "connect", target) == "HTTP/1.1 403 Forbidden", log
        shown = target.replace("[::ffff:127.0.0.1]", "127.0.0.1")  # judged as what it is
        assert f"[system] blocked connection to {shown}" in log, (shown, log)
    for url in gets[:3]:
        assert result(log, "get", url).startswith("HTTP/1.1 403 Forbidden | "), log
    assert "[system] blocked connection to 169.254.169.254:80" in log
    assert f"[system] blocked connection to 0.0.0.0:{api.port}" in log
    assert api.visits == []
    # The listed service answers, tunnelled and as a plain request.
    tunnelled = result(log, "connect", stub)
    assert tunnelled.startswith("HTTP/1.1 200 Connection established | HTTP/1.0 200 OK"), log
    assert tunnelled.endswith("reached allowed-service")
    assert result(log, "get", f"http://{stub}/ok").endswith("reached allowed-service")
    assert allowed.visits == ["/through-tunnel", "/ok"]


async def test_host_network_mode_keeps_the_shared_network(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    api: Listener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start_worker(
        agent_command=command("probe"),
        sandbox="bwrap",
        sandbox_network="host",
        agent_env="NET_*",
        port=api.port,
    )
    monkeypatch.setenv("NET_DIRECT", f"127.0.0.1:{api.port}")
    monkeypatch.setenv("NET_CONNECT", f"127.0.0.1:{api.port}")
    log = await run_probe(client, store)
    # Documented as unsafe: the agent reaches what the host reaches, and has no proxy.
    # The API's own answer (to a line that is not HTTP) came back.
    assert result(log, "direct", f"127.0.0.1:{api.port}").startswith("connected b'<!DOCTYPE")
    assert result(log, "connect", f"127.0.0.1:{api.port}") == "failed OSError"
    assert not [m for m in log if m.startswith("[system] blocked connection")]


async def test_a_repository_policy_adds_to_the_allowlist(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    allowed: Listener,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = f"127.0.0.1:{allowed.port}"
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[repo."acme/payments-api"]\nnetwork_allow = ["{target}"]\n')
    start_worker(
        agent_command=command("probe"), sandbox="bwrap", agent_env="NET_*", policy_file=policy
    )
    monkeypatch.setenv("NET_GET", f"http://{target}/for-this-repo")
    log = await run_probe(client, store)
    assert result(log, "get", f"http://{target}/for-this-repo").endswith("reached allowed-service")
    # Another repository's entry does not open it for this one (the file is read again).
    policy.write_text(f'[repo."acme/other"]\nnetwork_allow = ["{target}"]\n')
    log = await run_probe(client, store)
    assert result(log, "get", f"http://{target}/for-this-repo").startswith("HTTP/1.1 403 ")
    assert f"[system] blocked connection to {target}" in log
    assert allowed.visits == ["/for-this-repo"]


async def test_many_half_closed_tunnels_at_once_through_bridge_and_proxy(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Reads to EOF first: only a half-close lets the answer start.
        data = await reader.read()
        writer.write(data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    try:
        start_worker(
            agent_command=command("swarm", "200", f"127.0.0.1:{port}"),
            sandbox="bwrap",
            egress_allow=f"127.0.0.1:{port}",
        )
        log = await run_probe(client, store)
    finally:
        server.close()
        await server.wait_closed()
    assert "[stdout] swarm: 200 of 200 echoed whole; errors: []" in log, log


def test_the_allowlist_wraps_the_agent_in_the_bridge(tmp_path: Path) -> None:
    argv = ["claude", "-p"]
    egress = Egress.to(tmp_path / "proxy.sock")
    wrapped = wrap(argv, workspace=tmp_path, writable=False, extra_ro=[], home=SANDBOX_HOME)
    netted = wrap(
        argv, workspace=tmp_path, writable=False, extra_ro=[], home=SANDBOX_HOME, egress=egress
    )
    assert "--unshare-net" not in wrapped and "--unshare-net" in netted
    inside = ["/run/hookagent/bridge.py", "/run/hookagent/egress.sock", "3128", "--", *argv]
    assert netted[-len(inside) - 3 :] == [str(egress.python), "-I", "-S", *inside]
    socket_bind = netted.index(str(tmp_path / "proxy.sock"))
    assert netted[socket_bind - 1 : socket_bind + 2] == [
        "--bind", str(tmp_path / "proxy.sock"), "/run/hookagent/egress.sock"
    ]  # fmt: skip
    assert proxy_environment() == {
        "HTTP_PROXY": "http://127.0.0.1:3128",
        "HTTPS_PROXY": "http://127.0.0.1:3128",
        "http_proxy": "http://127.0.0.1:3128",
        "https_proxy": "http://127.0.0.1:3128",
        "NO_PROXY": "",
        "no_proxy": "",
        "ALL_PROXY": "",
        "all_proxy": "",
    }


async def test_a_proxy_that_cannot_start_fails_the_task_without_running_the_agent(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Temporary files go to a directory too deep for a unix socket path (108 bytes).
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    start_worker(agent_command=command("probe"), sandbox="bwrap")
    task_id = await submit(client)
    assert await wait_status(store, task_id, PLANNED) is TaskStatus.FAILED
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    log = [e.message for e in entries]
    assert log[-1].startswith("[system] status failed: the agent's egress proxy did not start: ")
    assert not [m for m in log if m.startswith(("[stdout]", "[system] running "))]
    assert list(deep.iterdir()) == []  # its directory removed again
