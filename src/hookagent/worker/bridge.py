"""Inside the agent's sandbox: a loopback port that leads to the egress proxy, then the agent.

Under ``HOOKAGENT_SANDBOX_NETWORK=allowlist`` the agent's network namespace holds only
loopback. Its one way out is the egress proxy's unix socket, bound into the sandbox. CLIs
speak to an HTTP proxy over TCP (``HTTP_PROXY=http://127.0.0.1:PORT``), so this script,
started by bwrap as ``python3 -I -S bridge.py SOCKET PORT -- AGENT...``, binds
``127.0.0.1:PORT``, leaves a detached child copying each connection to ``SOCKET`` byte for
byte, and execs the agent in its own place (the agent keeps the pid bwrap waits on).

It runs the host's Python from a read-only mount, needs no privilege and imports only the
standard library: it filters nothing, the proxy outside does. The agent may kill it or
connect to the socket itself; either way it meets the same proxy. It dies with the sandbox's
PID namespace when the agent exits.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

CHUNK = 64 * 1024
BACKLOG = 512
# How long a closing connection may take to flush what it still holds for its peer.
CLOSE_GRACE_S = 2.0


async def splice(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: asyncio.StreamWriter
) -> None:
    """Copy ``reader`` into ``writer`` until EOF, then half-close ``writer``.

    The other direction goes on: a client that shut its side down still gets the answer.
    ``peer`` is the writer of ``reader``'s connection: a reset on either side aborts both
    connections, which ends the other direction's copy too.
    """
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.transport.abort()
        peer.transport.abort()


async def relay(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Both directions between two connections, half-closes passed on; closes both after."""
    try:
        await asyncio.gather(splice(a[0], b[1], a[1]), splice(b[0], a[1], b[1]))
    finally:
        await close(a[1])
        await close(b[1])


async def close(writer: asyncio.StreamWriter) -> None:
    """Close a connection; one the peer reset, or that cannot flush, is dropped all the same.

    A transport closes only once its buffer is written: a peer that stopped reading would
    keep this waiting for ever, and with it whoever ends the relay (a cancel included).
    """
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_GRACE_S):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except OSError:
        return  # reset by the peer: closed already


async def _forward(path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        upstream = await asyncio.open_unix_connection(path)
    except OSError:
        await close(writer)
        return
    await relay((reader, writer), upstream)


async def _serve(listener: socket.socket, path: str) -> None:
    # Tasks of our own in a set of our own: asyncio holds tasks only weakly, and once a
    # client half-closed nothing else holds its relay: the garbage collector would end it.
    running: set[asyncio.Task[None]] = set()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(_forward(path, reader, writer))
        running.add(task)
        task.add_done_callback(running.discard)

    server = await asyncio.start_server(accept, sock=listener, limit=CHUNK)
    async with server:
        await server.serve_forever()


def listen(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port``, bound before the agent starts."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(BACKLOG)
    return listener


def main(argv: list[str]) -> None:
    """``bridge.py SOCKET PORT -- AGENT...``: start the bridge, become the agent."""
    path, port, separator, command = argv[0], int(argv[1]), argv[2], argv[3:]
    if separator != "--" or not command:
        sys.exit("usage: bridge.py SOCKET PORT -- COMMAND...")
    listener = listen(port)  # bound first: the agent may connect the moment it starts
    child = os.fork()
    if child == 0:
        # Forked twice so the bridge is not the agent's child (a shell agent's `wait` must
        # not wait for it), and off the agent's stdio so its pipes close when it exits.
        if os.fork() != 0:
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.setsid()
        asyncio.run(_serve(listener, path))
        os._exit(0)
    os.waitpid(child, 0)
    listener.close()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
