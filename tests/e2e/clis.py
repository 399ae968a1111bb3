"""Finding the real agent CLIs the test command installs, and the steps every e2e test takes."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from hookagent.models import TaskStatus
from hookagent.store import Store
from tests.github_stub import GitHubStub
from tests.helpers import FIXTURES, REPO, wait_status

# Where scripts/test.sh installs each CLI (npm prefixes under the user's cache).
NPM_PREFIXES = {"claude": "npm", "codex": "npm-agents", "gemini": "npm-agents"}
# The user's cache, read once at import: each test then gives the CLIs a HOME of their own.
USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))


def cli_bin(name: str) -> str:
    """``HOOKAGENT_TEST_<NAME>_BIN``, else the test command's install, else PATH."""
    explicit = os.environ.get(f"HOOKAGENT_TEST_{name.upper()}_BIN")
    cached = USER_CACHE / "hookagent" / NPM_PREFIXES[name] / "node_modules" / ".bin" / name
    for candidate in (explicit, str(cached), shutil.which(name)):
        if candidate and Path(candidate).exists():
            return candidate
    if os.environ.get("CI"):
        pytest.fail(f"the {name} CLI is not installed; the test command installs it with npm")
    pytest.skip(f"the {name} CLI is not installed (run the README's test command)")


async def open_task(client: httpx.AsyncClient) -> str:
    """A task from the Sentry alert fixture (its context names ``KeyError: 'currency'``)."""
    body = (FIXTURES / "sentry-event-alert.json").read_bytes()
    response = await client.post(
        "/webhooks/sentry", content=body, headers={"content-type": "application/json"}
    )
    task_id: str = response.json()["task_id"]
    return task_id


async def settle(store: Store, task_id: str, *, timeout: float = 120) -> TaskStatus:
    """The status the task comes to rest in: awaiting approval, completed or failed."""
    ends = {TaskStatus.PENDING_APPROVAL, TaskStatus.COMPLETED, TaskStatus.FAILED}
    return await wait_status(store, task_id, ends, timeout=timeout)


async def log_of(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    """Every log entry of the task, as the API serves them."""
    response = await client.get(f"/tasks/{task_id}/logs", params={"limit": -1})
    entries: list[dict[str, Any]] = response.json()["logs"]
    return entries


def pushed(remotes: Path, branch: str, *names: str) -> dict[str, str]:
    """The text of ``names`` on ``branch`` of the repository's bare remote."""
    bare = remotes / f"{REPO}.git"
    return {
        name: subprocess.run(
            ["git", "-C", str(bare), "show", f"{branch}:{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for name in names
    }


def entry(logs: list[dict[str, Any]], message: str) -> dict[str, Any]:
    """The first entry whose message starts with ``message`` (fails listing them all)."""
    found = [e for e in logs if e["message"].startswith(message)]
    assert found, [e["message"] for e in logs]
    return found[0]


async def plan_and_execute(
    client: httpx.AsyncClient, store: Store, start: Callable[..., object], **settings: object
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """A worker started with ``settings`` and a GitHub stub; a task planned, approved, done.

    The task id and its log after planning and after execution (each status checked).
    """
    with GitHubStub() as github:
        start(github_api_url=github.url, github_token=SecretStr("ghp_e2e_token"), **settings)
        tid = await open_task(client)
        planned, planning = await settle_with_logs(client, store, tid)
        assert planned is TaskStatus.PENDING_APPROVAL, [e["message"] for e in planning]
        await client.post(f"/tasks/{tid}/approve", json={})
        done, logs = await settle_with_logs(client, store, tid)
        assert done is TaskStatus.COMPLETED, [e["message"] for e in logs]
    return tid, planning, logs


async def settle_with_logs(
    client: httpx.AsyncClient, store: Store, task_id: str
) -> tuple[TaskStatus, list[dict[str, Any]]]:
    """The status the task comes to rest in, and its log up to then."""
    status = await settle(store, task_id)
    return status, await log_of(client, task_id)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> content): what a run must leave alone."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def check_homes_contained(
    template: Path, before: dict[str, bytes], homes: Path, logs: list[dict[str, Any]], model: str
) -> None:
    """After sandboxed runs from a template: the template as it was, no run's home left,
    and no connection to the ``model`` URL's port refused by the egress proxy (the CLI's
    own calls elsewhere, github.com say, may be)."""
    assert snapshot(template) == before
    assert list(homes.iterdir()) == []
    port = model.rsplit(":", 1)[1].split("/", 1)[0]
    blocked = [e["message"] for e in logs if e["message"].startswith("[system] blocked")]
    assert not [m for m in blocked if m.endswith(f":{port}")], blocked
