"""The service's supervision of its worker loops."""

from __future__ import annotations

import asyncio

import pytest

from hookagent.service import keep_running


async def test_a_dead_loop_is_restarted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    starts: list[int] = []
    third_start = asyncio.Event()

    async def flaky(stop: asyncio.Event) -> None:
        starts.append(len(starts))
        if len(starts) == 1:
            raise RuntimeError("a bug in the loop")
        if len(starts) == 2:
            return  # ended on its own, without a stop
        third_start.set()
        await stop.wait()

    supervisor = asyncio.create_task(keep_running("worker w1", flaky, stop))
    async with asyncio.timeout(10):
        await third_start.wait()
    stop.set()
    async with asyncio.timeout(5):
        await supervisor
    assert len(starts) == 3
    assert "worker w1 died; restarting it" in caplog.text
    assert "worker w1 ended although nothing asked it to" in caplog.text


async def test_a_stop_ends_it_and_a_cancel_is_not_swallowed() -> None:
    stop = asyncio.Event()
    running = asyncio.Event()

    async def loop(stop: asyncio.Event) -> None:
        running.set()
        await asyncio.Event().wait()  # only a cancel ends this one

    supervisor = asyncio.create_task(keep_running("worker w2", loop, stop))
    await running.wait()
    supervisor.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervisor
