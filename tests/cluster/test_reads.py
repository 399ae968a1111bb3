"""Every read the web UI and a scraper make, answered by an API on a real Valkey Cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from hookagent.models import TaskStatus
from hookagent.store import Store
from tests.api.test_stream import live, read_sse, server
from tests.cluster.test_flow import PLANNED, post_alert, settled
from tests.conftest import RunWorker
from tests.helpers import fake_agent, wait_status

pytestmark = pytest.mark.cluster

__all__ = ["live", "server"]  # fixtures, used by name


async def test_every_read_the_ui_and_a_scraper_make_answers_on_a_cluster(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, server: str
) -> None:
    start_worker(agent_command=fake_agent("auto", "ticks", "5", "0"))
    tid = (await post_alert(client, uuid.uuid4().hex))["task_id"]
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    # The status indexes live in other slots: they follow the task once its change settles.
    await settled(store)

    # What src/hookagent/ui/js fetches, the probes, and /metrics.
    reads = [
        "/metrics",
        "/readyz",
        "/healthz",
        "/workers",
        "/tasks/counts",
        "/tasks/?limit=50",
        f"/tasks/?limit=50&status={TaskStatus.PENDING_APPROVAL.value}",
        f"/tasks/{tid}",
        f"/tasks/{tid}/progress",
        f"/tasks/{tid}/status",
        f"/tasks/{tid}/logs?offset=0&limit=100",
        f"/tasks/{tid}/logs?limit=-1",
        "/search?q=guard&limit=50",
        "/ui/meta",
        "/ui/me",
        "/stats",
    ]
    answers = {url: await client.get(url) for url in reads}
    failed = {
        url: (r.status_code, r.text[:300]) for url, r in answers.items() if r.status_code != 200
    }
    assert not failed, failed
    metrics = answers["/metrics"].text
    assert 'hookagent_tasks_total{status="pending_approval"} 1.0' in metrics, metrics
    assert "hookagent_queue_depth 0.0" in metrics, metrics
    assert answers["/readyz"].json()["workers"] >= 1
    assert len(answers["/workers"].json()["workers"]) >= 1
    assert answers[f"/tasks/{tid}"].json()["status"] == TaskStatus.PENDING_APPROVAL.value
    assert {h["task_id"] for h in answers["/search?q=guard&limit=50"].json()["hits"]} == {tid}

    # The two live streams the UI opens, over a real server: the board's and the task's.
    async with httpx.AsyncClient(timeout=30) as http:
        # From the start of the board's stream: its events so far include this task's.
        resume = {"Last-Event-ID": "0-1"}
        async with http.stream("GET", f"{server}/tasks/events", headers=resume) as board:
            assert board.status_code == 200
            first = [line async for line in _until_data(board)]
        assert first[-1].startswith("data: ") and tid in first[-1], first
        entries, _ = await read_sse(http, f"{server}/tasks/{tid}/logs/stream", stop_after=3)
        assert [e["id"] for e in entries] == [0, 1, 2]


async def _until_data(response: httpx.Response) -> AsyncIterator[str]:
    """The stream's lines up to and including its first ``data:`` line."""
    async for line in response.aiter_lines():
        yield line
        if line.startswith("data: "):
            return
