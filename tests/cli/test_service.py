"""The service's supervision of its worker loops, and the API process's uvicorn options."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvloop
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter

from hookagent.api.access_log import AccessLog
from hookagent.cli.service import (
    STREAM_CLOSE_S,
    event_loop_factory,
    keep_running,
)
from hookagent.settings import Settings
from tests.helpers import FIXTURES
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


@pytest.mark.timeout(120)
def test_sigterm_ends_the_server_while_a_log_stream_is_open(settings: Settings) -> None:
    # An open SSE follow (a browser tab, `hookagent logs --follow`) must not hold a stop
    # until a second Ctrl-C: uvicorn waits for open connections only STREAM_CLOSE_S.
    port = free_port()
    server = start_server(process_env(settings), port)
    base = f"http://127.0.0.1:{port}"
    opened = threading.Event()
    try:
        payload = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())
        created = httpx.post(f"{base}/webhooks/sentry", json=payload, timeout=10)
        assert created.status_code == 202, created.text
        url = f"{base}/tasks/{created.json()['task_id']}/logs/stream"

        def follow() -> None:
            with contextlib.suppress(httpx.HTTPError):
                with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=60)) as stream:
                    opened.set()  # the headers came: the stream is open
                    for _ in stream.iter_lines():
                        pass

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        assert opened.wait(15), "the stream did not open"
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(STREAM_CLOSE_S + 10) == 0, server.output[-2000:]
        assert time.monotonic() - started < STREAM_CLOSE_S + 10
        follower.join(10)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("case", "setting"),
    [
        ("malformed url", "HOOKAGENT_REDIS_URL"),
        ("unreachable url", "HOOKAGENT_REDIS_URL"),
        ("data dir under a file", "HOOKAGENT_DATA_DIR"),
        ("port in use", "HOOKAGENT_PORT"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2_before_anything_starts(
    tmp_path: Path, case: str, setting: str
) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
    env["HOOKAGENT_DATA_DIR"] = str(data)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = free_port()
        if case == "malformed url":
            env["HOOKAGENT_REDIS_URL"] = "redis://:bad@@x"
        elif case == "unreachable url":
            env["HOOKAGENT_REDIS_URL"] = f"redis://:s3cret-pass@127.0.0.1:{free_port()}"
        elif case == "data dir under a file":
            (tmp_path / "afile").write_text("")
            env["HOOKAGENT_DATA_DIR"] = str(tmp_path / "afile" / "data")
        else:
            port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "hookagent.cli", "up", "--port", str(port)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # no log line: no Valkey, no API, no worker was started
    [line] = done.stderr.splitlines()
    assert re.fullmatch(rf"error: {setting}: .+ \(fix: .+\)", line), line
    assert "s3cret-pass" not in line
    assert not (data / "hookagent.lock").exists() and not (data / "appendonlydir").exists()


@pytest.mark.parametrize("command", ["server", "worker"])
def test_server_and_worker_without_a_redis_url_say_so_in_one_line(
    tmp_path: Path, command: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
    env["HOOKAGENT_DATA_DIR"] = str(tmp_path / "data")
    argv = [sys.executable, "-m", "hookagent.cli", command]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: HOOKAGENT_REDIS_URL: not set, and only `hookagent up` embeds Valkey "
        "(fix: set it to your Redis, or run `hookagent up`)"
    ]


@pytest.mark.parametrize(
    ("status", "sent", "logged"),
    [
        (200, b"/healthz", "/healthz"),
        (404, b"/tasks/x?token=abc&page=2", "/tasks/x?token=[REDACTED]&page=2"),
        (599, b'/webhooks/sentry?q="x"', "/webhooks/sentry?q=%22x%22"),
        (201, b"/a%20b?%74oken=t", "/a%20b?%74oken=[REDACTED]"),
    ],
)
def test_access_lines_are_uvicorns_text(status: int, sent: bytes, logged: str) -> None:
    """The front layer's access line is what uvicorn's access log printed, secrets cut."""
    path, _, query = sent.partition(b"?")
    scope = {
        "type": "http", "method": "GET", "http_version": "1.1", "raw_path": path,
        "path": path.decode(), "query_string": query, "client": ("127.0.0.1", 5555),
    }  # fmt: skip
    out = io.StringIO()
    AccessLog(out).request(scope, status)  # no event loop here: written at once
    # uvicorn's own formatter, with the pid the access format had before these lines were ours.
    fmt = LOGGING_CONFIG["formatters"]["access"]["fmt"]
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5555", "GET", logged, "1.1", status), None,
    )  # fmt: skip
    uvicorns = AccessFormatter(
        fmt.replace("%(client_addr)s", "[%(process)d] %(client_addr)s", 1), use_colors=False
    ).format(record)
    assert out.getvalue() == uvicorns + "\n"
    assert f'[{os.getpid()}] 127.0.0.1:5555 - "GET {logged} HTTP/1.1" {status}' in uvicorns


async def test_access_lines_are_written_together() -> None:
    """The lines of one delay go out in one write, after it, and not before."""
    out = _Flushed()
    access = AccessLog(out, delay=0.05)
    scope = {
        "method": "GET", "http_version": "1.1", "raw_path": b"/healthz", "path": "/healthz",
        "query_string": b"", "client": ("127.0.0.1", 1),
    }  # fmt: skip
    for _ in range(3):
        access.request(scope, 200)
    assert out.getvalue() == ""
    async with asyncio.timeout(5):
        await out.flushed.wait()
    assert out.writes == 1
    assert out.getvalue().count('"GET /healthz HTTP/1.1" 200 OK\n') == 3


class _Flushed(io.StringIO):
    """A stream that counts its writes and says when it was flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushed = asyncio.Event()

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        super().flush()
        self.flushed.set()
