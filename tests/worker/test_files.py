"""hookagent's own directories and locks: a cancelled waiter never keeps a lock held."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from pathlib import Path

import pytest

from hookagent.worker.files import take_lock


async def test_a_cancelled_waiter_never_keeps_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "mirror.lock"
    holder = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    blocked = threading.Event()

    def take() -> int:
        fd = os.open(path, os.O_RDWR)
        blocked.set()
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    waiter = asyncio.create_task(take_lock(take))
    await asyncio.to_thread(blocked.wait, 10)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    os.close(holder)  # the waiting thread takes the lock now, and must let it go
    again = os.open(path, os.O_RDWR)
    try:
        await asyncio.wait_for(asyncio.to_thread(fcntl.flock, again, fcntl.LOCK_EX), 10)
    finally:
        os.close(again)
