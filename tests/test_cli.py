"""``hookagent up`` as a user runs it: embedded Valkey, API, worker, the client commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from tests.helpers import FIXTURES, fake_agent

READY = "Uvicorn running on"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Up:
    """A running ``hookagent up``; ``ready`` is set when uvicorn says it listens."""

    def __init__(self, data_dir: Path, remotes: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
        env |= {
            "HOOKAGENT_DATA_DIR": str(data_dir),
            "HOOKAGENT_GIT_URL_TEMPLATE": f"file://{remotes}/{{repo}}.git",
            "HOOKAGENT_AGENT": "command",
            "HOOKAGENT_AGENT_COMMAND": fake_agent("auto"),
        }
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hookagent.cli", "up", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.ready = threading.Event()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if READY in line:
                self.ready.set()
        self.ready.set()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


@pytest.fixture
def up_factory(tmp_path: Path, remotes: Path) -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for up in started:
        if up.proc.poll() is None:
            up.proc.kill()
        up.stop()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookagent.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_up_serves_the_seed_flow_and_keeps_tasks_across_restarts(
    tmp_path: Path, remotes: Path, up_factory: list[Up]
) -> None:
    data = tmp_path / "data"
    up = Up(data, remotes, free_port())
    up_factory.append(up)
    assert up.ready.wait(60) and up.proc.poll() is None, "".join(up.output)
    assert httpx.get(f"{up.url}/healthz").json()["status"] == "ok"

    # A second `up` on the same data dir refuses clearly instead of sharing it.
    clash = Up(data, remotes, free_port())
    up_factory.append(clash)
    assert clash.proc.wait(30) == 1
    clash.stop()
    assert "is in use by hookagent" in "".join(clash.output)

    seed = (FIXTURES / "sentry-seed-example.json").read_bytes()
    # The seed's curl, byte for byte: a Sentry payload naming myorg/myrepo.
    response = httpx.post(
        f"{up.url}/webhooks/sentry", content=seed, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 202
    tid = response.json()["task_id"]
    alert = (FIXTURES / "sentry-event-alert.json").read_bytes()
    planned = httpx.post(
        f"{up.url}/webhooks/sentry", content=alert, headers={"Content-Type": "application/json"}
    )
    pid = planned.json()["task_id"]
    follow = httpx.get(f"{up.url}/tasks/{pid}/logs", params={"limit": -1})
    assert follow.status_code == 200

    listing = cli("tasks", "--url", up.url)
    assert listing.returncode == 0 and tid in listing.stdout
    status = cli("status", tid, "--url", up.url)
    assert status.returncode == 0 and tid in status.stdout
    missing = cli("status", "task-1-00", "--url", up.url)
    assert missing.returncode == 1 and "404" in missing.stderr

    lifecycle_through_the_cli(up.url, data, tmp_path)
    assert up.stop() == 0
    assert "Traceback" not in "".join(up.output)

    again = Up(data, remotes, free_port())
    up_factory.append(again)
    assert again.ready.wait(60), "".join(again.output)
    assert httpx.get(f"{again.url}/tasks/{tid}/status").status_code == 200
    logs = cli("logs", pid, "--url", again.url)
    assert logs.returncode == 0 and "[system] attempt 1" in logs.stdout
    assert again.stop() == 0


def wait_line(data: Path, task_id: str, needle: str) -> None:
    """Block on the task's log stream in the embedded Valkey until ``needle`` shows up."""
    client = Redis(unix_socket_path=str(data / "valkey.sock"), decode_responses=True)
    key, last = f"hookagent:task:{{{task_id}}}:logs", "0-0"
    try:
        for _ in range(60):
            for _, entries in client.xread({key: last}, block=1000) or []:
                last = entries[-1][0]
                if any(needle in fields["msg"] for _, fields in entries):
                    return
        raise AssertionError(f"{needle!r} never appeared in {task_id}'s log")
    finally:
        client.close()


def lifecycle_through_the_cli(url: str, data: Path, tmp_path: Path) -> None:
    payload = json.loads((FIXTURES / "jira-issue-created.json").read_text())
    first, second = tmp_path / "one.json", tmp_path / "two.json"
    first.write_text(json.dumps(payload))
    payload["issue"]["key"] = "PAY-232"
    second.write_text(json.dumps(payload))
    submitted = cli("submit", "jira", str(first), "--url", url)
    assert submitted.returncode == 0, submitted.stderr
    tid = json.loads(submitted.stdout)["task_id"]
    other = json.loads(cli("submit", "jira", str(second), "--url", url).stdout)["task_id"]
    wait_line(data, tid, "plan ready")
    approve = cli("approve", tid, "--comment", "go", "--as", "dana", "--url", url)
    assert approve.returncode == 0 and "pending_approval → approved" in approve.stdout
    wait_line(data, tid, "[system] completed")
    assert "completed" in cli("status", tid, "--url", url).stdout
    followed = cli("logs", tid, "-f", "--url", url)
    assert followed.returncode == 0 and followed.stdout.rstrip().endswith("— task completed —")
    as_json = cli("logs", tid, "-f", "--json", "--grep", "approved by", "--url", url)
    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["message"] for e in entries if e.get("kind") != "status"] == [
        "[system] approved by dana: go"
    ]
    tail = cli("logs", tid, "--tail", "1", "--json", "--url", url).stdout.splitlines()
    assert [json.loads(line)["message"] for line in tail] == ["[system] status completed"]
    found = cli("search", "guard division", "--url", url)
    assert found.returncode == 0 and tid in found.stdout
    retry = cli("retry", tid, "--url", url)
    assert retry.returncode == 1 and f"409: task {tid} is completed" in retry.stderr
    wait_line(data, other, "plan ready")
    reject = cli("reject", other, "--reason", "not now", "--url", url)
    assert reject.returncode == 0 and "→ rejected" in reject.stdout


def test_client_commands_explain_an_unreachable_server() -> None:
    result = cli("tasks", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


def test_server_without_redis_url_says_what_to_do() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
    result = subprocess.run(
        [sys.executable, "-m", "hookagent.cli", "server"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "HOOKAGENT_REDIS_URL is required" in result.stderr
