"""A TCP relay in front of a real server that can freeze traffic or swallow replies.

The network faults an outage is made of, for one client, without stopping a server other
tests share: ``freeze()`` holds every byte both ways (a server that stopped answering),
``swallow_replies()`` forwards requests but drops the answers (a command that landed but
whose reply was lost), ``thaw()`` lets everything through again. Optionally the relay
speaks TLS to its clients (``ssl``), so a client can be tested against a real handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class Relay:
    """Relays 127.0.0.1:<port> to the server at ``target`` (a Redis URL, TCP or unix)."""

    def __init__(self, target: str, *, ssl: ssl_module.SSLContext | None = None) -> None:
        self._target = urlsplit(target)
        self._ssl = ssl
        self._open = asyncio.Event()
        self._open.set()
        self._swallow = False
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0
        self.connections = 0

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, scheme: str = "redis") -> str:
        """The relay's address as a Redis URL."""
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def freeze(self) -> None:
        """Hold all traffic, both ways, until ``thaw``."""
        self._open.clear()

    def swallow_replies(self) -> None:
        """Forward requests, drop every reply, until ``thaw``."""
        self._swallow = True

    def thaw(self) -> None:
        """Let everything through again (what was held goes on now)."""
        self._swallow = False
        self._open.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        if self._target.scheme == "unix":
            up_reader, up_writer = await asyncio.open_unix_connection(self._target.path)
        else:
            host, port = self._target.hostname, self._target.port
            up_reader, up_writer = await asyncio.open_connection(host, port)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, replies=False)),
            asyncio.create_task(self._pump(up_reader, writer, replies=True)),
        ]
        self._pumps.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._pumps.difference_update(pumps)
            for end in (writer, up_writer):
                end.close()
                with contextlib.suppress(OSError, ssl_module.SSLError):
                    await end.wait_closed()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, replies: bool
    ) -> None:
        with contextlib.suppress(OSError, ssl_module.SSLError):
            while data := await reader.read(65536):
                await self._open.wait()
                if replies and self._swallow:
                    continue
                writer.write(data)
                await writer.drain()

    async def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, *self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@contextlib.asynccontextmanager
async def relay(target: str, *, ssl: ssl_module.SSLContext | None = None) -> AsyncIterator[Relay]:
    """A started :class:`Relay` to the server at ``target``, closed on the way out."""
    r = Relay(target, ssl=ssl)
    await r.start()
    try:
        yield r
    finally:
        r.thaw()
        await r.close()
