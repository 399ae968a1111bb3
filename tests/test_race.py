"""race(): the first to finish wins, the rest are cancelled and awaited, errors surface."""

from __future__ import annotations

import asyncio

import pytest

from hookagent.race import race, raise_if_cancelling


async def forever(cancelled: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(name)
        raise


async def value(result: int, ready: asyncio.Event) -> int:
    await ready.wait()
    return result


async def test_the_first_result_wins_and_the_rest_are_stopped() -> None:
    cancelled: list[str] = []
    ready = asyncio.Event()
    ready.set()
    which, result = await race(forever(cancelled, "a"), value(7, ready), forever(cancelled, "b"))
    assert (which, result) == (1, 7)
    assert sorted(cancelled) == ["a", "b"], "the losers are cancelled before race returns"


async def test_the_first_error_is_raised_as_itself() -> None:
    cancelled: list[str] = []

    async def boom() -> None:
        raise LookupError("the watchdog's write failed")

    with pytest.raises(LookupError, match="watchdog"):
        await race(forever(cancelled, "agent"), boom())
    assert cancelled == ["agent"]


async def test_a_cancel_of_the_caller_cancels_all_and_is_not_swallowed() -> None:
    cancelled: list[str] = []
    started = asyncio.Event()

    async def start_then_wait() -> None:
        started.set()
        await forever(cancelled, "b")

    caller = asyncio.create_task(race(forever(cancelled, "a"), start_then_wait()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert sorted(cancelled) == ["a", "b"]


async def test_a_swallowed_cancel_is_raised_again() -> None:
    """A loop whose step turned its cancel into an error still ends at its next check."""
    steps: list[int] = []
    started = asyncio.Event()

    async def loop() -> None:
        while True:
            try:
                started.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                steps.append(1)  # what a step that survives "errors" does with the cancel
            raise_if_cancelling()

    task = asyncio.create_task(loop())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    assert steps == [1]
