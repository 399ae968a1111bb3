"""``/readyz``: ready only when Redis answers and a worker heartbeat is recent."""

from __future__ import annotations

import json
import socket
import uuid

import httpx

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.helpers import FIXTURES, app_client, wait_status


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_not_ready_without_a_worker(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "error": "not_ready",
        "detail": {"redis": "ok", "workers": "no worker heartbeat within 30s"},
    }
    assert (await client.get("/workers")).json() == {"workers": [], "count": 0, "quotas": []}


async def test_ready_with_one_worker(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker
) -> None:
    start_worker()
    payload = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())
    payload["data"]["event"]["issue_id"] = uuid.uuid4().hex
    tid = (await client.post("/webhooks/sentry", json=payload)).json()["task_id"]
    # A worker that planned a task has sent its heartbeat (it beats before taking a job).
    await wait_status(store, tid, {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED})
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "redis": "ok", "workers": 1}


async def test_not_ready_when_redis_is_unreachable(settings: Settings) -> None:
    url = f"redis://:not-for-output@127.0.0.1:{closed_port()}/0"
    dead = settings.model_copy(update={"redis_url": url})
    async with app_client(dead) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "not_ready"
    assert body["detail"]["redis"].startswith("unreachable")
    assert "not-for-output" not in response.text


async def test_readyz_is_in_the_api_description(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "503" in paths["/readyz"]["get"]["responses"] and "/workers" in paths
