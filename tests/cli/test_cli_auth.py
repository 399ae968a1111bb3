"""The CLI against access control: refusals at start-up, and ``--token`` on a real server."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookagent.models import NewTask, TaskStatus
from hookagent.store import Store
from tests.cli.test_cli import READY, bare_env, free_port, one_error_line, processes_naming
from tests.helpers import move_to

VIEWER = "viewer-token-0123456789"
OPERATOR = "operator-token-0123456789"


def hookagent(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookagent.cli", *args],
        capture_output=True,
        text=True,
        env=bare_env(**env),
        timeout=60,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3"])
def test_up_on_a_public_address_without_tokens_refuses_to_start(tmp_path: Path, host: str) -> None:
    data = tmp_path / "data"
    result = hookagent(
        "up", "--host", host, "--port", str(free_port()), HOOKAGENT_DATA_DIR=str(data)
    )
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert "is not a loopback address and no API tokens are set" in line, line
    assert "HOOKAGENT_API_TOKENS" in line and "HOOKAGENT_ALLOW_ANONYMOUS=true" in line
    assert not data.exists() and processes_naming(str(data)) == []


def test_up_refuses_a_malformed_token_list_without_echoing_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = hookagent(
        "up",
        "--port",
        str(free_port()),
        HOOKAGENT_DATA_DIR=str(data),
        HOOKAGENT_API_TOKENS=f"viewer:{VIEWER},superuser:{OPERATOR}",
    )
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert line.startswith("error: HOOKAGENT_API_TOKENS: entry 2: role must be"), line
    assert VIEWER not in line and OPERATOR not in line
    assert not data.exists()


class Server:
    """``hookagent server`` with tokens, on the tests' Redis under the test's prefix."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        digest = hashlib.sha256(OPERATOR.encode()).hexdigest()
        env = bare_env(
            HOOKAGENT_REDIS_URL=redis_url,
            HOOKAGENT_KEY_PREFIX=prefix,
            HOOKAGENT_API_TOKENS=f"viewer:{VIEWER},operator:dana:sha256:{digest}",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hookagent.cli", "server", "--port", str(self.port)],
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

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def server(redis_url: str, prefix: str) -> Iterator[Server]:
    running = Server(redis_url, prefix)
    assert running.ready.wait(60) and running.proc.poll() is None, "".join(running.output)
    yield running
    running.stop()


async def test_client_commands_send_the_token(server: Server, store: Store) -> None:
    new = NewTask(source="sentry", repository="acme/x", title="t", prompt="p")
    pending = (await store.tasks.create(new)).task_id
    await move_to(store, pending, TaskStatus.PENDING_APPROVAL, fields={"plan": "the plan"})
    done = (await store.tasks.create(new)).task_id
    await move_to(store, done, TaskStatus.COMPLETED, reason="done")
    url = server.url

    refused = hookagent("tasks", "--url", url)
    assert refused.returncode == 1
    line = one_error_line(refused)
    assert line.startswith("error: 401: ") and "pass --token or set HOOKAGENT_TOKEN" in line
    listed = hookagent("tasks", "--url", url, "--token", VIEWER)
    assert listed.returncode == 0 and pending in listed.stdout, listed.stderr
    from_env = hookagent("status", pending, "--url", url, HOOKAGENT_TOKEN=VIEWER)
    assert from_env.returncode == 0 and "pending_approval" in from_env.stdout
    followed = hookagent("logs", done, "-f", "--url", url, HOOKAGENT_TOKEN=VIEWER)
    assert followed.returncode == 0 and "— task completed —" in followed.stdout

    viewer_approves = hookagent("approve", pending, "--url", url, "--token", VIEWER)
    assert viewer_approves.returncode == 1
    assert "403: this needs the operator role" in one_error_line(viewer_approves)
    approved = hookagent(
        "approve", pending, "--comment", "go", "--as", "mallory", "--url", url, "--token", OPERATOR
    )
    assert approved.returncode == 0 and "→ approved" in approved.stdout, approved.stderr
    assert "--as is ignored" in approved.stderr
    entries, _ = await store.logs.read(pending, offset=0, limit=-1)
    assert "[system] status approved: approved by dana: go" in [e.message for e in entries]
