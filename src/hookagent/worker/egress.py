"""The agent's egress proxy: one per run, on a unix socket only that run's sandbox can reach.

An HTTP proxy speaking the two forms CLIs use through ``HTTP_PROXY``/``HTTPS_PROXY``:
``CONNECT host:port`` (a TLS tunnel) and requests with an absolute ``http://`` URI. Each
target is judged by the run's :class:`Allowlist`; a refused one gets ``403`` and is reported
through ``on_blocked`` (the worker writes ``[system] blocked connection to HOST:PORT``). An
allowed one is connected to the addresses the allowlist checked, then bytes are relayed
both ways with half-closes passed on. The proxy runs in the worker, outside the sandbox;
it knows nothing of Redis. Leaving its context closes the socket, cancels every connection
and removes its private directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from hookagent.worker.allowlist import Allowlist, IPAddress, normalise
from hookagent.worker.bridge import BACKLOG, close, relay

log = logging.getLogger(__name__)

OnBlocked = Callable[[str], Awaitable[None]]
HEAD_MAX = 64 * 1024
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0
# Hop-by-hop headers of the agent's request that are not passed on; Host is set from the URL
# (a Host naming another site would reach it through an allowed address).
_DROPPED = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "host"}
)


@dataclass(frozen=True, slots=True)
class Request:
    """What the agent asked for: a tunnel, or one plain HTTP request to forward."""

    host: str
    port: int
    tunnel: bool
    # The request to send upstream (plain HTTP only): origin-form, Host set, connection closed.
    forward: bytes = b""

    @property
    def target(self) -> str:
        """``HOST:PORT`` as the log shows it (an IPv6 address in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class EgressProxy:
    """Serves the agent's proxy requests on ``socket_path`` while the context is open."""

    def __init__(self, allowlist: Allowlist, *, on_blocked: OnBlocked) -> None:
        self._allowlist = allowlist
        self._on_blocked = on_blocked
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._dir: Path | None = None

    @property
    def socket_path(self) -> Path:
        """The unix socket the sandbox binds in (in a 0700 directory of its own)."""
        if self._dir is None:
            raise RuntimeError("the egress proxy is not running")
        return self._dir / "proxy.sock"

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return len(self._connections)

    async def start(self) -> None:
        """Listen on a fresh socket (OSError when that cannot be done)."""
        # A short path outside every workspace (tempfile's directory): sun_path holds 108 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="hookagent-egress-"))
        try:
            self._server = await asyncio.start_unix_server(
                self._accept, path=self.socket_path, limit=HEAD_MAX, backlog=BACKLOG
            )
        except BaseException:
            shutil.rmtree(self._dir)
            self._dir = None
            raise

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop accepting, end every connection, remove the socket's directory."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._connections):
            task.cancel()
        # Their own errors were logged where they happened; what is left is the cancel.
        await asyncio.gather(*self._connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task, held in our own set: asyncio holds tasks only weakly (the garbage
        # collector would end a relay whose client half-closed), and aclose cancels them.
        task = asyncio.create_task(self._serve(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            # The agent went away, stalled or sent something that is not a request head.
            log.debug("egress proxy: connection ended early", exc_info=True)
        except Exception:
            log.exception("egress proxy: a connection failed")
        finally:
            await close(writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(HEAD_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        request = parse_head(head)
        if request is None:
            await answer(writer, 400, "Bad Request", "not a proxy request\n")
            return
        addresses = await self._admit(request)
        if addresses is None:
            await self._on_blocked(request.target)
            text = f"hookagent: {request.target} is not on the agent's network allowlist\n"
            await answer(writer, 403, "Forbidden", text)
            return
        if not addresses:
            await answer(writer, 502, "Bad Gateway", f"{request.target} does not resolve\n")
            return
        try:
            upstream = await connect(addresses, request.port)
        except (OSError, TimeoutError) as exc:
            await answer(writer, 502, "Bad Gateway", f"{request.target}: {exc.strerror or exc}\n")
            return
        if request.tunnel:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            upstream[1].write(request.forward)
        await relay((reader, writer), upstream)

    async def _admit(self, request: Request) -> tuple[IPAddress, ...] | None:
        try:
            return await self._allowlist.admit(request.host, request.port)
        except (OSError, TimeoutError):
            return ()  # allowed, but the name does not resolve


async def connect(
    addresses: tuple[IPAddress, ...], port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first of ``addresses`` that answers (the checked ones, no lookup)."""
    failure: OSError | TimeoutError = OSError("no address")
    for address in addresses:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                return await asyncio.open_connection(str(address), port, limit=HEAD_MAX)
        except (OSError, TimeoutError) as exc:
            failure = exc
    raise failure


async def answer(writer: asyncio.StreamWriter, status: int, reason: str, text: str) -> None:
    """A short plain-text answer, then the connection closes."""
    body = text.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    with contextlib.suppress(OSError):
        await writer.drain()


def parse_head(head: bytes) -> Request | None:
    """The request a proxy head asks for, or None when it is not one we serve."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    method, target, version = parts
    if method == "CONNECT":
        host, port = _authority(target)
        if host is None or port is None:
            return None
        return Request(host, port, tunnel=True)
    if not method.isalpha() or not target.lower().startswith("http://"):
        return None
    try:
        url = urlsplit(target)
        port = url.port or 80
    except ValueError:
        return None
    host, _ = _authority(url.netloc.rpartition("@")[2] or "")
    if host is None:
        return None
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    authority = url.netloc.rpartition("@")[2]
    headers = [
        line for line in lines[1:] if line and line.split(":", 1)[0].strip().lower() not in _DROPPED
    ]
    forward = "\r\n".join(
        [f"{method} {path} {version}", f"Host: {authority}", *headers, "Connection: close", "", ""]
    )
    return Request(host, port, tunnel=False, forward=forward.encode("latin-1"))


def _authority(text: str) -> tuple[str | None, int | None]:
    """``host``, ``host:port`` or ``[v6]:port`` as (normalised host, port or None)."""
    host, port_text = text, ""
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        host, port_text = inner, rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    host = normalise(host)
    if not host or not all(c.isalnum() or c in ".-_:" for c in host):
        return None, None
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None, None
    return host, int(port_text)
