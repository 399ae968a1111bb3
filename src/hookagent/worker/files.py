"""Directories hookagent keeps for itself: made private, and removed whatever is inside."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents mode 0700, or tighten it to 0700."""
    for missing in reversed([p for p in (path, *path.parents) if not p.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)


def remove_tree(path: Path) -> None:
    """Delete ``path`` whatever the agent did to it (a symlink in its place, read-only dirs)."""
    if path.is_symlink():
        path.unlink()
        return
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return  # gone already, or removed concurrently by another sweeper
    except PermissionError:
        # A directory made read-only (Go's module cache does this) cannot be emptied until it
        # is writable again; symlinks are skipped so nothing outside the tree is touched.
        path.chmod(0o700)
        for top, dirs, _ in os.walk(path):
            for name in dirs:
                inner = os.path.join(top, name)
                if not os.path.islink(inner):
                    os.chmod(inner, 0o700)
        shutil.rmtree(path)


async def take_lock(take: Callable[[], int]) -> int:
    """``take()`` (which blocks until it holds a lock) in a thread: the lock's fd.

    Cancelled while it waits, the thread still gets the lock later: its fd is closed
    then, so a cancelled waiter never keeps a lock held.
    """
    waiting = asyncio.ensure_future(asyncio.to_thread(take))
    try:
        return await asyncio.shield(waiting)
    except asyncio.CancelledError:
        waiting.add_done_callback(_close_taken)
        raise


def _close_taken(done: asyncio.Future[int]) -> None:
    if not done.cancelled() and done.exception() is None:
        with contextlib.suppress(OSError):
            os.close(done.result())
