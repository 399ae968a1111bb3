"""The leak test: an agent prints every secret it can see; none of it is kept or sent on.

The agent prints its whole environment, every credential shape, a PEM block, a credentialed
URL and its clone's git config, while hookagent holds a GitHub token, webhook secrets, a
model key in its environment and a credentialed clone URL. Nothing secret may be found in
the logs (messages and raw events), search, progress, the plan, the pull request body sent
to GitHub, the Redis append-only file, or the clone's ``.git/config``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.git_http import GitHttpServer
from tests.github_stub import GitHubStub
from tests.helpers import FIXTURES, app_client, fake_agent, wait_status
from tests.test_redact import (
    ANTHROPIC,
    AWS_ACCESS,
    AWS_SECRET,
    GITHUB,
    GOOGLE,
    JWT,
    OPENAI_PROJECT,
    PEM,
    PEM_BODY,
    SLACK,
)

GIT_TOKEN = "glpat-" + "FakeGitTokenForLeakTest0"
GITHUB_TOKEN = "ghp_" + "LeakTestConfiguredToken000000000000x"
SENTRY_SECRET = "sentry-leak-test-secret-value"
WEBHOOK_SECRET = "github-leak-test-secret-value"
MODEL_KEY = "sk-ant-api03-" + "ModelKeyInTheEnvironmentOnly0000000-fakeAA"
URL_PASSWORD = "hunter2-but-longer"
PRINTED = [
    GITHUB["classic"],
    GITHUB["fine-grained"],
    ANTHROPIC,
    OPENAI_PROJECT,
    AWS_ACCESS,
    f"aws_secret_access_key = {AWS_SECRET}",
    SLACK,
    GOOGLE,
    JWT,
    f"https://deploy:{URL_PASSWORD}@git.example.com/acme/api.git",
    GITHUB_TOKEN,  # the configured one, as an agent that found it would print it
    SENTRY_SECRET,
    *PEM.splitlines(),
]
# What must appear nowhere: every secret, whole or as a telling fragment.
SECRETS = [
    GIT_TOKEN,
    GITHUB_TOKEN,
    SENTRY_SECRET,
    WEBHOOK_SECRET,
    MODEL_KEY,
    URL_PASSWORD,
    GITHUB["classic"],
    GITHUB["fine-grained"],
    ANTHROPIC,
    OPENAI_PROJECT,
    AWS_ACCESS,
    AWS_SECRET,
    SLACK,
    GOOGLE,
    JWT,
    PEM_BODY,
]
PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        yield stub


@pytest.fixture
def git_server(remotes: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(remotes, user="x-access-token", token=GIT_TOKEN) as server:
        yield server


def found_in(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def aof_text(redis: Redis) -> str | None:
    """Everything in the server's append-only file(s), or None when it keeps none."""
    config = await redis.config_get("*")
    if config.get("appendonly") != "yes":
        return None
    folder = Path(str(config["dir"])) / str(config.get("appenddirname") or "appendonlydir")
    return "".join(f.read_bytes().decode("utf-8", "replace") for f in sorted(folder.iterdir()))


async def test_an_agent_printing_every_secret_leaks_nothing(
    settings: Settings,
    store: Store,
    redis: Redis,
    start_worker: RunWorker,
    github: GitHubStub,
    git_server: GitHttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", MODEL_KEY)  # a model key in hookagent's env
    shapes = tmp_path / "shapes.txt"
    shapes.write_text("\n".join(PRINTED) + "\n")
    host = git_server.url.removeprefix("http://")
    own = {
        "agent_command": fake_agent("leak-all", str(shapes)),
        "git_url_template": f"http://x-access-token:{GIT_TOKEN}@{host}/{{repo}}.git",
        "github_api_url": github.url,
        "github_token": SecretStr(GITHUB_TOKEN),
        "github_webhook_secret": SecretStr(WEBHOOK_SECRET),
        "sentry_client_secret": SecretStr(SENTRY_SECRET),
    }
    start_worker(**own)
    body = (FIXTURES / "sentry-event-alert.json").read_bytes()
    signature = hmac.new(SENTRY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "sentry-hook-signature": signature}
    async with app_client(settings.model_copy(update=own)) as client:
        response = await client.post("/webhooks/sentry", content=body, headers=headers)
        assert response.status_code == 202, response.text
        tid = response.json()["task_id"]
        assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
        assert (await client.post(f"/tasks/{tid}/approve")).status_code == 200
        assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
        entries = (await client.get(f"/tasks/{tid}/logs", params={"limit": -1})).json()["logs"]
        task = (await client.get(f"/tasks/{tid}")).json()
        progress = (await client.get(f"/tasks/{tid}/progress")).json()
        hits = {
            secret: (await client.get("/search", params={"q": f'"{secret[:40]}"'})).json()["hits"]
            for secret in SECRETS
        }

    logs = json.dumps(entries)
    # The agent really printed everything, and its environment had no hookagent secret.
    assert "[stdout] found [REDACTED:github_token]" in logs
    assert "[REDACTED:private_key]" in logs and "[REDACTED:url_credentials]" in logs
    assert "env PATH=" in logs and "env HOOKAGENT_" not in logs and "ANTHROPIC_API_KEY" not in logs
    assert found_in(logs) == [], "log messages and raw events"
    assert {secret: hit for secret, hit in hits.items() if hit} == {}, "search"
    assert found_in(json.dumps(progress)) == [], "progress"
    assert "PLAN: rotate [REDACTED:" in task["plan"] and found_in(json.dumps(task)) == [], "plan"
    assert task["pr_url"], "the pull request was opened"
    [pull] = github.requests
    assert found_in(json.dumps(pull["body"])) == [], "pull request title and body"
    assert pull["headers"]["Authorization"] == f"Bearer {GITHUB_TOKEN}", "sent to GitHub only"
    # The clone's git config (printed by the agent from inside the clone) names no credential.
    config_lines = [e["message"] for e in entries if "url = " in e["message"]]
    assert config_lines and all(f"http://{host}/" in line for line in config_lines)
    aof = await aof_text(redis)
    if aof is not None:  # the embedded Valkey keeps one; an external test Redis may not
        assert tid in aof and found_in(aof) == [], "the Redis append-only file"
