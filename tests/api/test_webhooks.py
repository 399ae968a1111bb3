"""Webhook endpoints: accepted deliveries, signatures and every kind of bad input."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import FIXTURES, app_client

SEED = (FIXTURES / "sentry-seed-example.json").read_bytes()
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("path", ["/webhooks/sentry", "/webhooks/sentry/"])
async def test_seed_curl_queues_a_task_and_a_job(
    client: httpx.AsyncClient, store: Store, path: str
) -> None:
    response = await client.post(path, content=SEED, headers=JSON)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["task_id"].startswith("task-")
    task = await store.tasks.get(body["task_id"])
    assert (task.repository, task.status) == ("myorg/myrepo", TaskStatus.QUEUED)
    status = (await client.get(f"/tasks/{task.task_id}/status")).json()
    assert status["metadata"]["queue"] == "planning-queue"
    await store.jobs.ensure_group()  # a worker creates it; jobs queued before are kept
    job = await store.jobs.claim("test", block_ms=100)
    assert job is not None and job.task_id == body["task_id"]


async def test_jira_with_and_without_slash(client: httpx.AsyncClient) -> None:
    body = json.loads((FIXTURES / "jira-issue-created.json").read_bytes())
    for n, path in enumerate(("/webhooks/jira", "/webhooks/jira/")):
        body["issue"]["key"] = f"PAY-{n}"  # two issues: the same one twice is a duplicate
        response = await client.post(path, json=body)
        assert response.status_code == 202, response.text


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhooks/sentry", content=b'{"id": ', headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


async def test_wrong_content_type(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/webhooks/sentry", content=SEED, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


async def test_oversized_body_is_413_and_the_server_keeps_serving(
    client: httpx.AsyncClient,
) -> None:
    big = b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = await client.post("/webhooks/sentry", content=big, headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"

    async def chunks() -> AsyncIterator[
        bytes
    ]:  # no content-length: the streamed count must catch it
        for _ in range(40):
            yield b"a" * 65536

    streamed = await client.post("/webhooks/jira", content=chunks(), headers=JSON)
    assert streamed.status_code == 413
    assert (await client.post("/webhooks/sentry", content=SEED, headers=JSON)).status_code == 202


async def test_no_repository_is_422_saying_so(client: httpx.AsyncClient) -> None:
    payload = {"data": {"event": {"message": "boom"}}}
    response = await client.post("/webhooks/sentry", json=payload)
    assert response.status_code == 422
    assert "no repository" in response.json()["detail"]


async def test_bad_repository_name_is_422(client: httpx.AsyncClient) -> None:
    payload = {"data": {"event": {"message": "x", "tags": [["repository", "../../etc"]]}}}
    response = await client.post("/webhooks/sentry", json=payload)
    assert response.status_code == 422
    assert "owner/name" in response.json()["detail"]


async def test_ignored_delivery_is_200_without_a_task(
    client: httpx.AsyncClient, store: Store
) -> None:
    body = {"webhookEvent": "jira:issue_deleted", "issue": {"key": "PAY-1"}}
    response = await client.post("/webhooks/jira", json=body)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert await store.tasks.list(status=None, limit=10) == []


async def test_sentry_signature(settings: Settings, redis: Redis) -> None:
    own = settings.model_copy(update={"sentry_client_secret": SecretStr("s3cr3t-value")})
    body = (FIXTURES / "sentry-event-alert.json").read_bytes()
    good = hmac.new(b"s3cr3t-value", body, hashlib.sha256).hexdigest()
    async with app_client(own, redis) as http:
        ok = await http.post(
            "/webhooks/sentry", content=body, headers={**JSON, "sentry-hook-signature": good}
        )
        assert ok.status_code == 202, ok.text
        bad = await http.post(
            "/webhooks/sentry",
            content=body + b" ",
            headers={**JSON, "sentry-hook-signature": good},
        )
        assert bad.status_code == 401 and bad.json()["error"] == "bad_signature"
        missing = await http.post("/webhooks/sentry", content=body, headers=JSON)
        assert missing.status_code == 401


async def test_jira_signature(settings: Settings, redis: Redis) -> None:
    own = settings.model_copy(update={"jira_webhook_secret": SecretStr("jira-s3cret")})
    body = (FIXTURES / "jira-issue-created.json").read_bytes()
    sig = "sha256=" + hmac.new(b"jira-s3cret", body, hashlib.sha256).hexdigest()
    async with app_client(own, redis) as http:
        ok = await http.post(
            "/webhooks/jira", content=body, headers={**JSON, "x-hub-signature": sig}
        )
        assert ok.status_code == 202, ok.text
        wrong = await http.post(
            # Another last digit, always (``sig[:-2] + "00"`` was the real one 1 run in 256).
            "/webhooks/jira",
            content=body,
            headers={**JSON, "x-hub-signature": sig[:-1] + ("1" if sig.endswith("0") else "0")},
        )
        assert wrong.status_code == 401


def test_placeholder_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        Settings(sentry_client_secret=SecretStr("changeme"))


async def test_allowed_repos(settings: Settings, redis: Redis) -> None:
    own = settings.model_copy(update={"allowed_repos": "acme/payments-api"})
    async with app_client(own, redis) as http:
        refused = await http.post("/webhooks/sentry", content=SEED, headers=JSON)
        assert refused.status_code == 422 and "ALLOWED_REPOS" in refused.json()["detail"]
        body = (FIXTURES / "sentry-event-alert.json").read_bytes()
        assert (await http.post("/webhooks/sentry", content=body, headers=JSON)).status_code == 202


async def test_rate_limit_zero_is_off(settings: Settings, redis: Redis) -> None:
    own = settings.model_copy(update={"rate_limit": 0})
    ignored = {"webhookEvent": "jira:issue_deleted", "issue": {"key": "PAY-1"}}
    async with app_client(own, redis) as http:
        codes = {(await http.post("/webhooks/jira", json=ignored)).status_code for _ in range(20)}
    assert codes == {200}


@pytest.mark.parametrize(
    ("host", "required"),
    [("127.0.0.1", False), ("::1", False), ("localhost", False), ("0.0.0.0", True),
     ("", True), ("10.0.0.5", True), ("hookagent.internal", True)],
)  # fmt: skip
def test_signatures_are_required_unless_bound_to_loopback(host: str, required: bool) -> None:
    assert Settings(host=host).signatures_required is required
    assert Settings(host=host, require_signatures=False).signatures_required is False
    assert Settings(host="127.0.0.1", require_signatures=True).signatures_required is True


async def test_deeply_nested_body_is_400_and_the_server_keeps_serving(
    client: httpx.AsyncClient,
) -> None:
    deep = b"[" * 1000 + b"]" * 1000
    response = await client.post("/webhooks/sentry", content=deep, headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"] == "too_deep"
    assert (await client.post("/webhooks/sentry", content=SEED, headers=JSON)).status_code == 202


async def test_lone_surrogate_becomes_a_replacement_character(
    client: httpx.AsyncClient, store: Store
) -> None:
    body = (
        b'{"data": {"event": {"message": "bad \\ud800 surrogate", '
        b'"tags": [["repository", "acme/payments-api"]]}}, "\\udfff key": 1}'
    )
    response = await client.post("/webhooks/sentry", content=body, headers=JSON)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    detail = await client.get(f"/tasks/{task_id}")
    assert detail.status_code == 200
    assert "bad \ufffd surrogate" in detail.json()["title"]
    assert (await store.tasks.get(task_id)).title == detail.json()["title"]
