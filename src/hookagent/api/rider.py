"""A rider: one follower while a broadcaster writes for it, with writes that never wait.

A broadcaster writes the same bytes to a thousand followers in one loop, so no write of its
may wait on one follower's full socket. A rider writes to uvicorn's transport when it has
one (``direct.py``), and hands the follower back to its own loop when the transport cannot
take the bytes at once; through the ASGI ``send`` it starts the write and, when flow control
makes it wait, finishes it in a task of its own (``_Rest``) and hands the follower back.
Either way that follower reads on from its own cursor and the others are not held up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, cast

from starlette.types import Message, Send

from hookagent.api.direct import Direct
from hookagent.api.frames import Frames


class _Rest:
    """The rest of a write that could not finish at once (flow control), to run as a task."""

    def __init__(self, write: Coroutine[Any, Any, None], blocked: Any) -> None:
        self._write = write
        self._blocked = blocked  # what the write's first step waits on

    def __await__(self) -> Generator[Any, Any, None]:
        yield self._blocked  # the task waits on it as the write would have...
        yield from self._write.__await__()  # ...then the write goes on where it stopped


class Rider:
    """One follower while a broadcaster writes for it: where it writes, what it has, its release.

    ``direct`` (uvicorn's transport) is written to when it is given; else ``send`` (the ASGI
    chain, SSE only). ``cursor`` and ``progress`` (the feed's ``progress_version`` the
    follower has sent) go back to the follower's loop with it, which goes on from both.
    """

    # Read for every rider in every batch: slots, not a dict per rider to look up.
    __slots__ = ("cursor", "direct", "pending", "progress", "released", "send")

    def __init__(
        self,
        cursor: int,
        *,
        send: Send | None = None,
        direct: Direct | None = None,
        progress: int = 0,
    ) -> None:
        if send is None and direct is None:
            raise ValueError("a rider needs a send or a direct transport")
        self.send = send
        self.direct = direct
        self.cursor = cursor
        self.progress = progress
        self.released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A write of the broadcaster's that waits on flow control, finished by a task of its
        # own; the follower awaits it before it writes anything else.
        self.pending: asyncio.Future[None] | None = None

    def release(self) -> None:
        """Hand the follower back to its own loop (idempotent)."""
        if not self.released.done():
            self.released.set_result(None)

    def take(self, cursor: int, frames: Frames, progress: int) -> bool:
        """Write a delivery, then stand at ``cursor`` having had ``progress``; False: handed back.

        A rider handed back by a full socket has not had it: its own loop writes it.
        """
        direct = self.direct
        if direct is None:
            self.cursor, self.progress = cursor, progress
            self._send(frames.bodies)
            return not self.released.done()
        try:
            written = direct.offer(frames.direct)
        except (OSError, RuntimeError):
            # The connection went between the check and the write (uvloop refuses a closed
            # handle): its own loop sees the disconnect and ends.
            written = False
        if written:
            self.cursor, self.progress = cursor, progress
            return True
        # Its socket is full (or closing): its own loop writes this batch (and the progress)
        # through ``send``, which waits on uvicorn's flow control, and reads on from its cursor.
        self.release()
        return False

    def _send(self, bodies: tuple[bytes, ...]) -> None:
        """Start writing ``bodies``; what cannot finish now finishes in a task (and releases)."""
        for at, body in enumerate(bodies):
            write = cast(Coroutine[Any, Any, None], cast(Send, self.send)(_body(body)))
            try:
                blocked = write.send(None)
            except StopIteration:
                continue  # the common case: the bytes went to the socket's buffer
            except Exception as exc:
                if not self.released.done():
                    self.released.set_exception(exc)
                return
            # Its buffer is full: this follower reads slowly, so it finishes the write (and
            # any body after it) itself and reads on from its own cursor; the others are not
            # held up.
            rest = self._finish(_Rest(write, blocked), bodies[at + 1 :])
            self.pending = asyncio.ensure_future(rest)
            self.release()
            return

    async def _finish(self, rest: _Rest, bodies: tuple[bytes, ...]) -> None:
        await rest
        for body in bodies:
            await cast(Send, self.send)(_body(body))


def _body(body: bytes) -> Message:
    """One chunk of the streamed response, as the follower's own loop would send it."""
    return {"type": "http.response.body", "body": body, "more_body": True}
