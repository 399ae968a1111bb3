"""``hookagent server --api-processes 2``: one port served by two supervised processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import uuid

import pytest

from hookagent.settings import Settings
from tests.helpers import FIXTURES, wait_dead
from tests.processes import SERVING, Service, free_port, process_env

STARTED = re.compile(r"started (api-\d) \(pid (\d+)\)")


async def wait_line(server: Service, pattern: str, *, after: int = 0) -> re.Match[str]:
    """The first output line from index ``after`` on matching ``pattern`` (waited for)."""
    return await asyncio.to_thread(server.wait_line, pattern, after=after)


def children(server: Service) -> dict[str, int]:
    """The latest pid of each API process, from the supervisor's ``started`` lines."""
    return {m[1]: int(m[2]) for m in map(STARTED.search, server.lines) if m}


class Connection:
    """One keep-alive HTTP/1.1 connection: which process accepted it is fixed for its life."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        """Connect to the port."""
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request; its status and body (Content-Length framed)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(f"{head}Content-Type: application/json\r\n\r\n".encode() + body)
        status_line = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", status_line, re.I)[1])  # type: ignore[index]
        return int(status_line[9:12]), await self.reader.readexactly(length)

    def close(self) -> None:
        """Close the connection."""
        self.writer.close()


async def served_by(server: Service, conn: Connection) -> int:
    """The pid of the process serving ``conn``, from its access line (the pid in brackets)."""
    probe = uuid.uuid4().hex
    status, _ = await conn.request("GET", f"/healthz?probe={probe}")
    assert status == 200
    found = await wait_line(server, rf"\[(\d+)\] [\d.:]+ - \"GET /healthz\?probe={probe} ")
    return int(found[1])


async def connect_to(server: Service, port: int, pid: int, others: list[int]) -> Connection:
    """A connection accepted by ``pid``: the other processes are stopped while it connects."""
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        conn = await Connection.open(port)
        assert await served_by(server, conn) == pid
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)
    return conn


@pytest.mark.timeout(120)
async def test_two_api_processes_serve_one_port_follow_each_other_and_restart(
    settings: Settings,
) -> None:
    port = free_port()
    env = process_env(settings, HOOKAGENT_API_PROCESSES="2")
    server = Service("server", env, "--port", str(port), mark=SERVING)
    try:
        await wait_line(server, r"started api-2 \(pid")
        pids = children(server)
        for pid in pids.values():
            await wait_line(server, rf"\[server {pid}\] .*{SERVING}")
        one, two = pids["api-1"], pids["api-2"]
        first = await connect_to(server, port, one, [two])
        second = await connect_to(server, port, two, [one])
        # A follower on the second process; the task made and cancelled through the first.
        payload = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())
        payload["data"]["event"]["issue_id"] = uuid.uuid4().hex
        status, body = await first.request("POST", "/webhooks/sentry", json.dumps(payload).encode())
        assert status == 202, body
        tid = json.loads(body)["task_id"]
        head = f"GET /tasks/{tid}/logs/stream HTTP/1.1\r\nHost: t\r\n\r\n"
        second.writer.write(head.encode())
        await second.reader.readuntil(b"\r\n\r\n")
        status, body = await first.request("POST", f"/tasks/{tid}/cancel", b"{}")
        assert status == 200, body
        async with asyncio.timeout(30):
            while b"cancelled" not in await second.reader.readline():
                pass
        first.close()
        second.close()
        # A killed API process is restarted on the same socket; the port keeps serving.
        mark = len(server.lines)
        os.kill(one, signal.SIGKILL)
        await wait_line(server, rf"api-1 \(pid {one}\) exited with code -9; restarting", after=mark)
        again = int((await wait_line(server, r"started api-1 \(pid (\d+)\)", after=mark))[1])
        await wait_line(server, rf"\[server {again}\] .*{SERVING}")
        third = await connect_to(server, port, again, [two])
        third.close()
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.output
    for pid in (one, two):
        await wait_dead(pid, timeout=10)
    assert "Traceback" not in server.output
