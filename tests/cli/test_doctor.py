"""``hookagent doctor`` as a user runs it: a subprocess, its lines and its exit code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from hookagent.cli.doctor import redact_url
from hookagent.cli.embedded import find_valkey
from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.sandbox import probe
from tests.conftest import RunWorker
from tests.helpers import FIXTURES, fake_agent, wait_status

# Values no line of output may contain.
SECRETS = {
    "HOOKAGENT_SENTRY_CLIENT_SECRET": "sentry-s3cret-value",
    "HOOKAGENT_JIRA_WEBHOOK_SECRET": "jira-s3cret-value",
    "HOOKAGENT_GITHUB_WEBHOOK_SECRET": "github-s3cret-value",
    "HOOKAGENT_LINEAR_WEBHOOK_SECRET": "linear-s3cret-value",
    "HOOKAGENT_GITHUB_TOKEN": "ghp-s3cret-value",
}


def doctor_env(**extra: str) -> dict[str, str]:
    """This process's environment without any HOOKAGENT_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
    return env | extra


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookagent.cli", "doctor"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def line(output: str, check: str) -> str:
    """The one line reporting ``check``."""
    found = [ln for ln in output.splitlines() if ln[2:].startswith(f"{check}: ")]
    assert len(found) == 1, output
    return found[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_good_configuration_passes_and_counts_live_workers(
    redis_url: str,
    prefix: str,
    settings: Settings,
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
) -> None:
    start_worker()
    payload = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())
    payload["data"]["event"]["issue_id"] = uuid.uuid4().hex
    tid = (await client.post("/webhooks/sentry", json=payload)).json()["task_id"]
    await wait_status(store, tid, {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED})
    data = settings.data_dir  # the worker created it, and its workspaces
    env = doctor_env(
        HOOKAGENT_REDIS_URL=redis_url,
        HOOKAGENT_KEY_PREFIX=prefix,
        HOOKAGENT_DATA_DIR=str(data),
        HOOKAGENT_AGENT="command",
        HOOKAGENT_AGENT_COMMAND=fake_agent("echo"),
        **SECRETS,
    )
    # Run without blocking the loop: the in-process worker keeps beating meanwhile.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hookagent.cli", "doctor",
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), 60)
    out, err = out_bytes.decode(), err_bytes.decode()
    assert proc.returncode == 0, out + err
    assert "✗" not in out
    assert line(out, "agent") == f"✓ agent: command agent {sys.executable}"
    assert line(out, "redis") == f"✓ redis: {redis_url} answers PING"
    assert line(out, "workers") == "✓ workers: 1 sent a heartbeat within 30s"
    assert line(out, "git").startswith("✓ git: ") and "git version" in out
    assert line(out, "data dir") == f"✓ data dir: {data} (mode 0700)"
    assert line(out, "workspaces") == f"✓ workspaces: {data / 'workspaces'} (mode 0700)"
    sources = (
        ("sentry", "CLIENT"),
        ("jira", "WEBHOOK"),
        ("github", "WEBHOOK"),
        ("linear", "WEBHOOK"),
    )
    for source, variable in sources:
        expected = f"✓ {source} webhooks: HOOKAGENT_{source.upper()}_{variable}_SECRET is set"
        assert line(out, f"{source} webhooks") == expected
    for value in SECRETS.values():
        assert value not in out + err


def test_a_bad_configuration_fails_and_names_what_to_fix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    url = f"redis://admin:redis-s3cret-value@127.0.0.1:{closed_port()}/0"
    env = doctor_env(
        HOOKAGENT_CLAUDE_BIN="/nonexistent",
        HOOKAGENT_REDIS_URL=url,
        HOOKAGENT_DATA_DIR=str(data),
        HOOKAGENT_SANDBOX="bwrap",
    )
    result = doctor(env)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "Traceback" not in out + result.stderr
    agent = line(out, "agent")
    assert agent.startswith("✗ agent: HOOKAGENT_CLAUDE_BIN=/nonexistent is not found")
    redis = line(out, "redis")
    assert redis.startswith("✗ redis: redis://admin:***@127.0.0.1:") and "unreachable" in redis
    assert "redis-s3cret-value" not in out + result.stderr
    assert line(out, "data dir") == (
        f"! data dir: {data} has mode 0755; other users may read tasks, logs and code in it: "
        f"chmod 700 {data}"
    )
    # Whether bwrap works depends on the host; either way doctor must say so correctly.
    sandbox = line(out, "sandbox")
    if probe() is None:
        assert sandbox == "✓ sandbox: HOOKAGENT_SANDBOX=bwrap and bwrap works here"
    else:
        assert sandbox.startswith("✗ sandbox: HOOKAGENT_SANDBOX=bwrap but ")
    assert line(out, "sentry webhooks").startswith("! sentry webhooks: ")
    assert not data.joinpath("workspaces").exists()  # doctor creates nothing


def test_refused_settings_are_failures_without_their_values() -> None:
    env = doctor_env(HOOKAGENT_GITHUB_TOKEN="changeme", HOOKAGENT_HEARTBEAT_SECONDS="60")
    result = doctor(env)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "✗ settings: HOOKAGENT_GITHUB_TOKEN: is a placeholder; set a real secret or leave it unset",
        "✗ settings: HOOKAGENT_HEARTBEAT_SECONDS: must be below HOOKAGENT_READY_WORKER_AGE "
        "(30 seconds) (got '60')",
    ]


def test_the_checks_import_no_server_code() -> None:
    code = (
        "import sys, hookagent.cli.doctor\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn')\n"
        "          or m.startswith(('hookagent.api', 'hookagent.cli.service'))]\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_redis_urls_are_shown_without_passwords() -> None:
    assert redact_url("unix:///run/valkey.sock") == "unix:///run/valkey.sock"
    assert redact_url("redis://:pw@db:6379/0") == "redis://:***@db:6379/0"
    assert redact_url("redis://app:p@ss@db/1") == "redis://app:***@db/1"
    assert redact_url("unix:///v.sock?db=2&password=pw") == "unix:///v.sock?db=2&password=***"


@contextlib.contextmanager
def valkey_on_tcp(data: Path, *extra: str) -> Iterator[int]:
    """A valkey-server on a loopback port with ``extra`` arguments; its port once ready."""
    port = closed_port()
    argv = [find_valkey(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
    argv += ["--save", "", "--appendonly", "no", *extra]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            for output in server.stdout:  # waits on the server's own word, not a timer
                if "Ready to accept connections" in output:
                    break
            yield port
        finally:
            server.terminate()
            server.wait(15)


def test_doctor_warns_when_redis_needs_no_password(tmp_path: Path) -> None:
    password = "doctor-redis-s3cret"
    with valkey_on_tcp(tmp_path, "--requirepass", password) as guarded:
        result = doctor(
            doctor_env(HOOKAGENT_REDIS_URL=f"redis://:{password}@127.0.0.1:{guarded}/0")
        )
    shown = f"redis://:***@127.0.0.1:{guarded}/0"
    assert line(result.stdout, "redis auth") == (
        f"✓ redis auth: {shown} refuses clients without its password"
    )
    assert password not in result.stdout + result.stderr
    with valkey_on_tcp(tmp_path) as open_port:
        result = doctor(doctor_env(HOOKAGENT_REDIS_URL=f"redis://127.0.0.1:{open_port}/0"))
    assert line(result.stdout, "redis auth").startswith(
        f"! redis auth: redis://127.0.0.1:{open_port}/0 answers without a password: "
    )
    # A password in the URL that the server does not ask for protects nothing.
    with valkey_on_tcp(tmp_path) as open_port:
        url = f"redis://:{password}@127.0.0.1:{open_port}/0"
        result = doctor(doctor_env(HOOKAGENT_REDIS_URL=url))
    assert line(result.stdout, "redis auth").startswith(
        "! redis auth: redis://:***@127.0.0.1:"
    ) and "answers without a password" in line(result.stdout, "redis auth")


def test_doctor_says_what_the_agents_network_is() -> None:
    unsandboxed = doctor(doctor_env(HOOKAGENT_SANDBOX_NETWORK="allowlist")).stdout
    assert line(unsandboxed, "network") == (
        "! network: the agent uses this host's network: HOOKAGENT_SANDBOX_NETWORK applies "
        "only with HOOKAGENT_SANDBOX=bwrap"
    )
    shared = doctor(doctor_env(HOOKAGENT_SANDBOX="bwrap", HOOKAGENT_SANDBOX_NETWORK="host"))
    assert line(shared.stdout, "network").startswith("! network: HOOKAGENT_SANDBOX_NETWORK=host: ")
    listed = doctor(doctor_env(HOOKAGENT_SANDBOX="bwrap", HOOKAGENT_EGRESS_ALLOW="a.b,*.c.d:443"))
    if probe(network=True) is None:
        assert line(listed.stdout, "network") == (
            "✓ network: allowlist: the agent reaches its model endpoint and 2 "
            "HOOKAGENT_EGRESS_ALLOW entries (plus policies' network_allow) through a per-task proxy"
        )
    else:
        assert line(listed.stdout, "network").startswith("✗ network: ")
    refused = doctor(doctor_env(HOOKAGENT_EGRESS_ALLOW="http://x.example/"))
    assert refused.returncode == 1
    assert line(refused.stdout, "settings").startswith("✗ settings: HOOKAGENT_EGRESS_ALLOW: ")
