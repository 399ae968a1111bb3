"""The whole flow against a real 3-primary Valkey Cluster, with failovers on the way."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.api.test_stream import live, read_sse, server
from tests.cluster_nodes import ValkeyCluster
from tests.conftest import RunWorker
from tests.github_stub import GitHubStub
from tests.helpers import FIXTURES, REPO, app_client, fake_agent, wait_for_line, wait_status
from tests.services.test_change_end import SECRET, pull_request
from tests.services.test_lifecycle import github, remote_branches, with_token

pytestmark = pytest.mark.cluster

__all__ = ["github", "live", "server"]  # fixtures, used by name

PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
ALERT = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())


async def post_alert(client: httpx.AsyncClient, issue: str) -> dict[str, Any]:
    """Deliver the Sentry alert for ``issue``; the answer's JSON."""
    payload = json.loads(json.dumps(ALERT))
    payload["data"]["event"]["issue_id"] = issue
    response = await client.post("/webhooks/sentry", json=payload)
    assert response.status_code in (200, 202), response.text
    body: dict[str, Any] = response.json()
    return body


async def outbox_events(store: Store, task_id: str) -> list[str]:
    """The task's lifecycle events in the outbox, in order."""
    redis: Any = store.redis
    rows = await redis.xrange(store.keys.outbox())
    return [fields["event"] for _, fields in rows if fields["task_id"] == task_id]


async def settled(store: Store) -> None:
    """Wait until no task change has effects pending (the worker applies them just after).

    Nothing announces it, so the unsettled set is looked at again for a bounded while.
    """
    redis: Any = store.redis
    async with asyncio.timeout(10):
        while await redis.zcard(store.keys.unsettled()):
            await asyncio.sleep(0.05)


async def test_plan_approve_pr_with_live_follow_search_and_failovers(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    github: GitHubStub,
    remotes: Path,
    server: str,
    valkey_cluster: ValkeyCluster,
    settings: Settings,
) -> None:
    start_worker(agent_command=fake_agent("auto", "ticks", "30", "0.05"), **with_token(github))
    tid = (await post_alert(client, uuid.uuid4().hex))["task_id"]
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL

    # Between steps: the primary holding the task's slot hands it to its replica.
    task_key = store.keys.task(tid)
    old, new = await asyncio.to_thread(valkey_cluster.fail_over, task_key)
    assert valkey_cluster.primary_of(task_key) == new != old
    approved = await client.post(f"/tasks/{tid}/approve")
    assert approved.status_code == 200, approved.text

    # During the execution: a follower reads live over SSE while the slot fails over again.
    async with httpx.AsyncClient(timeout=60) as http:
        following = asyncio.create_task(read_sse(http, f"{server}/tasks/{tid}/logs/stream"))
        await wait_for_line(store, tid, "tick 5")
        await asyncio.to_thread(valkey_cluster.fail_over, task_key)
        events, kinds = await following
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    await settled(store)

    ids = [e["id"] for e in events if "id" in e]
    assert ids == sorted(set(ids)), "the follower saw no gap-filling duplicate or reorder"
    messages = [e["data"].get("message", "") for e in events]
    ticks = [m for m in messages if m.startswith("[stdout] tick")]
    assert ticks == [f"[stdout] tick {i}" for i in range(30)]
    assert kinds[-1] == "end"

    task = await store.tasks.get(tid)
    assert task.pr_url == f"https://github.com/{REPO}/pull/{task.pr_number}"
    assert f"hookagent/{tid}" in remote_branches(remotes)
    assert len(github.requests) == 1, "one pull request, whatever the failovers"
    history = [h.status for h in await store.tasks.history(tid)]
    assert history == [
        "queued",
        "discovering",
        "pending_approval",
        "approved",
        "executing",
        "completed",
    ]
    # Every change has its outbox event, once: effects applied exactly once per target.
    assert await outbox_events(store, tid) == ["created", *history[1:]]
    assert [t.task_id for t in await store.tasks.list(status=TaskStatus.COMPLETED, limit=5)] == [
        tid
    ]
    found = (await client.get("/search", params={"q": "tick 7"})).json()
    assert {hit["task_id"] for hit in found["hits"]} == {tid}

    # The pull request is merged: the task ends, and /stats reads it across the slots.
    assert task.pr_number is not None
    own = settings.model_copy(update={"github_webhook_secret": SecretStr(SECRET)})
    async with app_client(own) as signed:  # its own client, from the settings
        event = github.closed_event(task.pr_number, merged=True)
        merged = await pull_request(signed, event, uuid.uuid4().hex)
        assert merged.json() == {"task_id": tid, "status": "merged", "previous": "completed"}
        await settled(store)
        assert (await outbox_events(store, tid))[-1] == "merged"
        total = (await signed.get("/stats")).json()["total"]
        assert (total["opened"], total["merged"], total["merge_rate"]) == (1, 1, 1.0)


async def test_replays_and_racing_deliveries_create_one_task(
    client: httpx.AsyncClient, store: Store
) -> None:
    issue = uuid.uuid4().hex
    answers = await asyncio.gather(*(post_alert(client, issue) for _ in range(6)))
    created = [a for a in answers if not a.get("duplicate")]
    assert len(created) == 1
    assert {a["task_id"] for a in answers} == {created[0]["task_id"]}
    replay = await post_alert(client, issue)
    assert replay["duplicate"] is True and replay["task_id"] == created[0]["task_id"]
    assert len(await store.tasks.list(status=None, limit=50)) == 1
    redis: Any = store.redis
    assert await redis.xlen(store.jobs.key) == 1  # one planning job
