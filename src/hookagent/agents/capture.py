"""Agent output captured in unlinked files and followed as they grow, instead of pipes.

A CLI built on Node or Bun (the Claude Code CLI is one) writes to a pipe asynchronously and
drops what is still queued when it exits: a 300 KB ``result`` line arrived cut after the
pipe's 64 KB, however fast it was read (anthropics/claude-code#77112). Writes to a regular
file are synchronous, so every byte the agent printed is in the file once it has exited.

Each stream gets an unlinked temporary file as its stdout or stderr; the runner reads behind
the agent with ``pread`` and wakes on inotify's ``IN_MODIFY`` (no polling). What has been read
is punched out of the file, so a long run keeps on disk only what is not read yet. There is
no EOF to wait for: once the agent has exited its output is complete, and the helpers it
left running are killed with its process group, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import sys
import tempfile

# What has been read is given back to the file system once this much has piled up.
PUNCH_BYTES = 4 * 1024 * 1024
# Without inotify (not Linux, or none left) the files are looked at on this tick instead.
TICK_SECONDS = 0.05
_IN_MODIFY = 0x2
_FALLOC_FL_KEEP_SIZE = 0x1
_FALLOC_FL_PUNCH_HOLE = 0x2

log = logging.getLogger(__name__)
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
if _LIBC is not None:
    _LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class Capture:
    """One output stream's file: the agent writes at its own offset, we read behind it."""

    def __init__(self) -> None:
        # Unlinked from the start: only the agent (through its stdout or stderr) and we hold it.
        self._file = tempfile.TemporaryFile(buffering=0)
        self.fd = self._file.fileno()
        self._offset = 0
        self._punched = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes written since the last read; empty when there are none."""
        data = os.pread(self.fd, size, self._offset)
        self._offset += len(data)
        if self._offset - self._punched >= PUNCH_BYTES:
            self._punch()
        return data

    def close(self) -> None:
        """Release the file (its blocks go once the agent's copies are closed too)."""
        self._file.close()

    def _punch(self) -> None:
        # Best effort: a file system without hole punching keeps the bytes until close.
        if _LIBC is not None:
            _LIBC.fallocate(self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, 0, self._offset)
        self._punched = self._offset


def _inotify(captures: list[Capture]) -> int:
    """An inotify descriptor watching the captures for writes; -1 where there is none."""
    if _LIBC is None:
        return -1
    fd: int = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        # fs.inotify.max_user_instances reached (128 by default, shared by the user's
        # processes): the run goes on, looking at its files on a tick instead.
        log.warning(
            "no inotify instance (%s); agent output is read every %ss",
            os.strerror(ctypes.get_errno()),
            TICK_SECONDS,
        )
        return -1
    for capture in captures:
        if _LIBC.inotify_add_watch(fd, f"/proc/self/fd/{capture.fd}".encode(), _IN_MODIFY) < 0:
            log.warning(
                "no inotify watch (%s); agent output is read every %ss",
                os.strerror(ctypes.get_errno()),
                TICK_SECONDS,
            )
            os.close(fd)
            return -1
    return fd


class Wakeup:
    """An event set whenever one of the captures is written to, or when told to."""

    def __init__(self, captures: list[Capture]) -> None:
        self.event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._fd = -1
        self._tick: asyncio.TimerHandle | None = None
        fd = _inotify(captures)
        if fd < 0:
            self._schedule_tick()
            return
        self._fd = fd
        self._loop.add_reader(fd, self._on_events)

    def close(self) -> None:
        """Stop watching."""
        if self._tick is not None:
            self._tick.cancel()
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _on_events(self) -> None:
        # The events themselves do not matter, only that there were some: drain and wake.
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 65536):
                pass
        self.event.set()

    def _schedule_tick(self) -> None:
        self.event.set()
        self._tick = self._loop.call_later(TICK_SECONDS, self._schedule_tick)
