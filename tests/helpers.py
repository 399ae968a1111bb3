"""Helpers shared by the tests: the fake agent, git remotes, waiting on a task."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
from redis.asyncio import Redis

from hookagent.api import create_app
from hookagent.models import TRANSITIONS, Action, LogEntry, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.logs import decode_chunk

FAKE_AGENT = Path(__file__).parent / "fake_agent.py"
FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
REPO = "acme/payments-api"


def fake_agent(*args: str) -> str:
    """The HOOKAGENT_AGENT_COMMAND that runs the fake agent in ``args`` mode."""
    return shlex.join([sys.executable, str(FAKE_AGENT), *args])


def make_remote(root: Path, repo: str) -> Path:
    """Create ``root/<repo>.git`` with one commit."""
    bare = root / f"{repo}.git"
    seed = root / "seed" / repo
    seed.mkdir(parents=True)
    (seed / "README.md").write_text("# payments-api\nThe payments service.\n")
    (seed / "app.py").write_text("def total(xs):\n    return sum(xs) / len(xs)\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip

    def run(*args: str, cwd: Path = seed) -> None:
        subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)

    run("git", "init", "-q", "-b", "main")
    run("git", "add", ".")
    run("git", "commit", "-q", "-m", "initial")
    run("git", "clone", "-q", "--bare", str(seed), str(bare), cwd=root)
    return bare


StreamEntries = list[tuple[str, dict[str, str]]]


def stream_entries(reply: object) -> StreamEntries:
    """The entries of an XREAD reply, read over RESP2 with ``decode_responses=True``.

    redis-py types the reply as the union of every protocol's shape; ours is always
    ``[[stream, [(entry_id, {field: value}), ...]], ...]``, or None when the block timed out.
    """
    streams = cast("list[tuple[str, StreamEntries]]", reply or [])
    return [entry for _, entries in streams for entry in entries]


def lines_of(entries: StreamEntries) -> list[LogEntry]:
    """The log lines held by chunk entries of a task's log stream."""
    return [line for entry_id, fields in entries for line in decode_chunk(entry_id, fields)]


async def wait_status(
    store: Store, task_id: str, statuses: set[TaskStatus], *, timeout: float = 30
) -> TaskStatus:
    """Wait until the task reaches one of ``statuses``, reading its log stream with XREAD BLOCK.

    Every status change of a worker is preceded by a ``[system]`` log line, so blocking on
    the log stream wakes us exactly when something happened.
    """
    keys = store.keys
    last = "0-0"
    async with asyncio.timeout(timeout):
        while True:
            task = await store.tasks.get(task_id)
            if task.status in statuses:
                return task.status
            reply = await store.redis.xread({keys.logs(task_id): last}, block=1000, count=1000)
            if entries := stream_entries(reply):
                last = entries[-1][0]


async def wait_for_line(store: Store, task_id: str, needle: str, timeout: float = 30) -> None:
    """Block on the task's log stream (XREAD BLOCK) until a line containing ``needle`` arrives."""
    keys = store.keys
    last = "0-0"
    async with asyncio.timeout(timeout):
        while True:
            reply = await store.redis.xread({keys.logs(task_id): last}, block=1000, count=1000)
            if entries := stream_entries(reply):
                last = entries[-1][0]
                if any(needle in line.message for line in lines_of(entries)):
                    return


async def wait_dead(pid: int, timeout: float = 15) -> None:
    """Wait for any process (not only our child) to exit, on its pidfd: no polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    loop.add_reader(fd, exited.set)
    try:
        async with asyncio.timeout(timeout):
            await exited.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


@contextlib.asynccontextmanager
async def app_client(
    settings: Settings, redis: Redis | None = None, *, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to a fresh app in-process, its lifespan run around it.

    ``address`` is the client address the app sees.
    """
    app = create_app(settings, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(address, 123))
        async with httpx.AsyncClient(transport=transport, base_url="http://hookagent") as http:
            yield http


def path_to(start: TaskStatus, goal: TaskStatus) -> list[Action]:
    """The shortest list of actions from ``start`` to ``goal`` in the transition table."""
    paths: dict[TaskStatus, list[Action]] = {start: []}
    frontier = [start]
    while frontier and goal not in paths:
        status = frontier.pop(0)
        for action, rule in TRANSITIONS.items():
            # A review task's ending: a change reaches ``completed`` through its execution.
            if action is Action.FINISH_REVIEW:
                continue
            if status in rule.allowed and rule.to not in paths:
                paths[rule.to] = [*paths[status], action]
                frontier.append(rule.to)
    if goal not in paths:
        raise ValueError(f"no way from {start} to {goal}")
    return paths[goal]


async def move_to(
    store: Store,
    task_id: str,
    status: TaskStatus,
    *,
    reason: str | None = None,
    fields: dict[str, str] | None = None,
) -> None:
    """Walk a task to ``status`` through allowed actions; the last one carries the extras."""
    steps = path_to((await store.tasks.get(task_id)).status, status)
    for number, action in enumerate(steps, 1):
        last = number == len(steps)
        await store.tasks.advance(
            task_id, action, reason=reason if last else None, fields=fields if last else None
        )


def just_written(payload: dict[str, Any], *, at: float | None = None) -> dict[str, Any]:
    """A copy of a comment delivery as its source sends it for a comment written ``at`` (now).

    Sets whichever creation times the payload carries: GitHub ``comment.created_at``, GitLab
    ``object_attributes.created_at``, Jira ``comment.created`` and ``timestamp`` (ms),
    Linear ``data.createdAt``. A decision written before the plan was ready decides nothing,
    so the fixtures' fixed past times would all be stale.
    """
    copy: dict[str, Any] = json.loads(json.dumps(payload))
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    iso = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if "created_at" in copy.get("comment", {}):
        copy["comment"]["created_at"] = iso
    if "created_at" in copy.get("object_attributes", {}):
        copy["object_attributes"]["created_at"] = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    if "created" in copy.get("comment", {}):
        copy["comment"]["created"] = moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if "timestamp" in copy:
        copy["timestamp"] = int(moment.timestamp() * 1000)
    if "createdAt" in copy.get("data", {}):
        copy["data"]["createdAt"] = iso
    return copy
