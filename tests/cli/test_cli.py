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

from hookagent.settings import get_settings
from tests.helpers import FIXTURES, fake_agent, lines_of, stream_entries

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


@pytest.mark.slow
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
            if entries := stream_entries(client.xread({key: last}, block=1000)):
                last = entries[-1][0]
                if any(needle in line.message for line in lines_of(entries)):
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
    # Once, in the status entry of the transition (status entries pass the --grep too).
    assert [e["message"] for e in entries if "approved by" in e["message"]] == [
        "[system] status approved: approved by anonymous (127.0.0.1): go"
    ]
    tail = cli("logs", tid, "--tail", "1", "--json", "--url", url).stdout.splitlines()
    assert [json.loads(line)["message"] for line in tail] == ["[system] status completed"]
    found = cli("search", "guard division", "--url", url)
    assert found.returncode == 0 and tid in found.stdout
    retry = cli("retry", tid, "--url", url)
    assert retry.returncode == 1 and f"409: task {tid} is completed" in retry.stderr
    # After the pull request: no change request was opened here (no GitHub token).
    merged = cli("tasks", "--status", "merged", "--url", url)
    assert merged.returncode == 0 and tid not in merged.stdout
    stats = cli("stats", "--url", url)
    assert stats.returncode == 0 and "(all)" in stats.stdout and "to merge" in stats.stdout
    wait_line(data, other, "plan ready")
    reject = cli("reject", other, "--reason", "not now", "--url", url)
    assert reject.returncode == 0 and "→ rejected" in reject.stdout


def test_client_commands_explain_an_unreachable_server() -> None:
    result = cli("tasks", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


def bare_env(**extra: str) -> dict[str, str]:
    """This process's environment without any HOOKAGENT_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
    return env | extra


def processes_naming(needle: str) -> list[int]:
    """Pids of every process whose command line mentions ``needle`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended while we looked; it cannot be one we care about
        if needle.encode() in cmdline:
            found.append(int(entry.name))
    return found


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The only line on stderr, checked to be an error and not a traceback."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [
        ({"HOOKAGENT_GITHUB_TOKEN": "changeme"}, "HOOKAGENT_GITHUB_TOKEN", "placeholder"),
        (
            {"HOOKAGENT_AGENT": "bogus"},
            "HOOKAGENT_AGENT",
            "must be one of claude, codex, gemini, command (got 'bogus')",
        ),
        ({"HOOKAGENT_AGENT": "command"}, "HOOKAGENT_AGENT_COMMAND", "HOOKAGENT_AGENT=command"),
        ({"HOOKAGENT_WORKERS": "many"}, "HOOKAGENT_WORKERS", "integer"),
        # The embedded Valkey is one server: cluster mode needs a cluster's URL.
        ({"HOOKAGENT_REDIS_CLUSTER": "true"}, "HOOKAGENT_REDIS_CLUSTER", "HOOKAGENT_REDIS_URL"),
    ],
    ids=[
        "placeholder-token",
        "unknown-agent",
        "command-without-command",
        "workers-not-a-number",
        "cluster-without-url",
    ],
)
def test_up_refuses_a_bad_setting_in_one_line_and_starts_nothing(
    tmp_path: Path, env: dict[str, str], variable: str, says: str
) -> None:
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "hookagent.cli", "up", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=bare_env(HOOKAGENT_DATA_DIR=str(data), **env),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert line.startswith(f"error: {variable}: ") and says in line, line
    # Nothing started: the embedded Valkey creates its data dir and lock first.
    assert not data.exists()
    assert processes_naming(str(data)) == []


def test_every_bad_setting_gets_its_own_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hookagent.cli", "server"],
        capture_output=True,
        text=True,
        env=bare_env(HOOKAGENT_AGENT="bogus", HOOKAGENT_LOG_FLUSH_MS="0"),
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "HOOKAGENT_AGENT",
        "HOOKAGENT_LOG_FLUSH_MS",
    ], result.stderr


def test_submit_explains_a_file_it_cannot_use(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the file must fail first
    not_json = tmp_path / "not.json"
    not_json.write_text("{ this is not json")
    for path, says in (
        (tmp_path / "missing.json", "No such file"),
        (tmp_path, "Is a directory"),
        (not_json, "not JSON"),
    ):
        result = cli("submit", "sentry", str(path), "--url", url)
        assert result.returncode != 0
        line = one_error_line(result)
        assert str(path) in line and says in line and "cannot reach" not in line, line


def test_client_commands_take_the_server_from_hookagent_url() -> None:
    from_env, from_flag = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "hookagent.cli", "tasks"]
    env = bare_env(HOOKAGENT_URL=from_env)
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and f"cannot reach {from_env}" in one_error_line(result)
    flagged = subprocess.run(
        [*command, "--url", from_flag], capture_output=True, text=True, env=env, timeout=60
    )
    assert f"cannot reach {from_flag}" in one_error_line(flagged)


def test_public_url_defaults_to_the_served_address(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOOKAGENT_PUBLIC_URL", "HOOKAGENT_HOST", "HOOKAGENT_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert get_settings(port=9000).public_url == "http://127.0.0.1:9000"
    assert get_settings(host="10.0.0.7", port=8080).public_url == "http://10.0.0.7:8080"
    assert get_settings(host="::1", port=8080).public_url == "http://[::1]:8080"
    monkeypatch.setenv("HOOKAGENT_PUBLIC_URL", "https://hookagent.example.com")
    assert get_settings(port=9000).public_url == "https://hookagent.example.com"
