"""The egress proxy on its own: answers, forwarding, and a teardown that leaves nothing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from hookagent.worker.allowlist import Allowlist, Entry
from hookagent.worker.egress import EgressProxy

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Upstream:
    """A loopback server that records each request head and answers (or echoes) it."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with Upstream() as server:
        yield server


async def ask(proxy: EgressProxy, request: bytes) -> Stream:
    stream = await asyncio.open_unix_connection(proxy.socket_path)
    stream[1].write(request)
    return stream


async def answer_of(proxy: EgressProxy, request: bytes) -> bytes:
    reader, writer = await ask(proxy, request)
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


async def test_refusals_and_plain_http_forwarding(upstream: Upstream) -> None:
    blocked: list[str] = []

    async def on_blocked(target: str) -> None:
        blocked.append(target)

    rules = Allowlist(entries=(Entry("127.0.0.1", upstream.port), Entry("*.invalid")))
    async with EgressProxy(rules, on_blocked=on_blocked) as proxy:
        refused = await answer_of(proxy, b"CONNECT example.org:443 HTTP/1.1\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 403 Forbidden\r\n")
        assert blocked == ["example.org:443"]
        garbage = await answer_of(proxy, b"GET /relative HTTP/1.1\r\nHost: x\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400 ") and blocked == ["example.org:443"]
        unresolved = await answer_of(proxy, b"CONNECT nothing.invalid:443 HTTP/1.1\r\n\r\n")
        assert unresolved.startswith(b"HTTP/1.1 502 ")
        request = (
            f"POST http://127.0.0.1:{upstream.port}/v1/x?y=1 HTTP/1.1\r\n"
            "Host: other-site.example\r\nProxy-Authorization: Basic c2VjcmV0\r\n"
            "Proxy-Connection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        forwarded = await answer_of(proxy, request)
    assert forwarded == b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"
    # Origin-form, Host from the URL (not the one the agent wrote), proxy headers gone.
    assert upstream.heads == [
        f"POST /v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
    ]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_teardown_ends_open_tunnels_and_leaves_nothing() -> None:
    ended: list[None] = []
    all_ended = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the proxy goes away
        writer.close()
        await writer.wait_closed()
        ended.append(None)
        if len(ended) == 50:
            all_ended.set()

    before_fds, before_tasks = open_fds(), asyncio.all_tasks()
    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def on_blocked(target: str) -> None:
        raise AssertionError(target)

    proxy = EgressProxy(Allowlist(entries=(Entry("127.0.0.1", port),)), on_blocked=on_blocked)
    async with proxy:
        directory = proxy.socket_path.parent
        assert oct(directory.stat().st_mode & 0o777) == "0o700"
        tunnels = [
            await ask(proxy, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            for _ in range(50)
        ]
        for reader, _ in tunnels:
            assert await reader.readuntil(b"\r\n\r\n") == (
                b"HTTP/1.1 200 Connection established\r\n\r\n"
            )
        assert proxy.connections == 50
    # Leaving the context ended every tunnel: each agent-side end reads EOF.
    for reader, writer in tunnels:
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
    assert proxy.connections == 0 and not directory.exists()
    server.close()
    await server.wait_closed()
    # The upstream side of each tunnel was closed too: every held connection ended.
    await asyncio.wait_for(all_ended.wait(), 10)
    assert asyncio.all_tasks() == before_tasks
    assert open_fds() == before_fds
