"""Run coroutines side by side until the first one finishes; the others are cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def race(*coros: Coroutine[Any, Any, Any]) -> tuple[int, Any]:
    """The index and result of the first coroutine to finish; the rest are cancelled.

    The others are awaited before this returns, so none outlives the call. The first one's
    error is raised as itself (a real error wins over a plain result when both are ready at
    once); a cancel of the caller cancels all of them and is re-raised, never swallowed.
    """
    tasks = [asyncio.ensure_future(coro) for coro in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # Shielded so that a second cancel of the caller cannot leave a task half-stopped.
        await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
    finished = [task for task in tasks if task in done]
    failed = [t for t in finished if not t.cancelled() and t.exception() is not None]
    first = (failed or finished)[0]
    return tasks.index(first), first.result()


def raise_if_cancelling() -> None:
    """Re-raise a cancel of the current task that something below swallowed.

    A cancel that lands while a Redis call is under a timeout can come out as a timeout
    error (the call's own ``asyncio.timeout`` and the cancel meet), which a loop that
    survives Redis errors then logs and goes on; or redis-py's own retry answers that
    timeout and the call returns as if nothing happened. Either way the task stays marked
    as cancelling: a loop calls this on each turn so that its owner's cancel still ends it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling() > 0:
        raise asyncio.CancelledError
