"""The service's supervision of its worker loops, and the API process's uvicorn options."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import uvloop

from hookagent.service import event_loop_factory, keep_running
from hookagent.settings import Settings
from tests.processes import free_port, process_env, start_server


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


def test_the_api_runs_on_uvloop_when_it_is_installed() -> None:
    assert event_loop_factory() is uvloop.new_event_loop


@pytest.mark.timeout(120)
@pytest.mark.parametrize("setting", ["true", "false"])
def test_access_log_follows_the_setting(settings: Settings, setting: str) -> None:
    port = free_port()
    server = start_server(process_env(settings, HOOKAGENT_ACCESS_LOG=setting), port)
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz?probe=access-log", timeout=10)
    finally:
        server.stop()  # collects everything it printed
    assert answer.status_code == 200
    logged = '"GET /healthz?probe=access-log HTTP/1.1" 200' in server.output
    assert logged == (setting == "true"), server.output[-2000:]
