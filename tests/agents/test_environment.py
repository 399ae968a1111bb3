"""The agent's environment is an allowlist: hookagent's secrets never reach the agent."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from hookagent.agents.environment import agent_environment, parse_names
from hookagent.models import TaskStatus
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.helpers import FIXTURES, fake_agent, wait_status

DONE = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}


def test_basics_adapter_names_and_listed_extras_pass_hookagent_never() -> None:
    base = {
        "PATH": "/bin",
        "HOME": "/h",
        "LC_ALL": "C",
        "ANTHROPIC_API_KEY": "k",
        "OPENAI_API_KEY": "o",
        "FOO_A": "1",
        "FOO": "no prefix match",
        "BAR": "2",
        "AWS_SECRET_ACCESS_KEY": "s",
        "HOOKAGENT_GITHUB_TOKEN": "t",
        "HOOKAGENT_X": "listed but never passed",
    }
    env = agent_environment(
        base,
        allowed_extra=parse_names(" FOO_*, BAR ,HOOKAGENT_X,HOOKAGENT_*"),
        agent_names=("ANTHROPIC_*",),
    )
    assert env == {
        "PATH": "/bin",
        "HOME": "/h",
        "LC_ALL": "C",
        "ANTHROPIC_API_KEY": "k",
        "FOO_A": "1",
        "BAR": "2",
    }


def test_a_lone_star_passes_nothing_extra() -> None:
    assert agent_environment({"SECRET": "x", "PATH": "/bin"}, allowed_extra=["*"]) == {
        "PATH": "/bin"
    }


async def test_the_worker_runs_the_agent_with_the_allowlist_only(
    client: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOKAGENT_GITHUB_TOKEN", "ghp_worker_secret_value")
    monkeypatch.setenv("HOOKAGENT_SENTRY_CLIENT_SECRET", "sentry_worker_secret_value")
    monkeypatch.setenv("HOOKAGENT_PASSED_ANYWAY", "listed_but_hookagent")
    monkeypatch.setenv("SOME_SECRET", "x")
    monkeypatch.setenv("TEAM_REGION", "eu-west")
    monkeypatch.setenv("TEAM_ZONE", "b")
    monkeypatch.setenv("LISTED_TOO", "yes")
    start_worker(
        agent_command=fake_agent("env"), agent_env="TEAM_*, LISTED_TOO, HOOKAGENT_PASSED_ANYWAY"
    )
    payload = json.loads((FIXTURES / "sentry-event-alert.json").read_bytes())
    payload["data"]["event"]["issue_id"] = uuid.uuid4().hex
    response = await client.post("/webhooks/sentry", json=payload)
    tid = response.json()["task_id"]
    assert await wait_status(store, tid, DONE) is TaskStatus.PENDING_APPROVAL

    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    printed = dict(
        e.message.removeprefix("[stdout] env ").split("=", 1)
        for e in entries
        if e.message.startswith("[stdout] env ")
    )
    assert printed["PATH"] and printed["HOME"]
    assert printed["TEAM_REGION"] == "eu-west" and printed["TEAM_ZONE"] == "b"
    assert printed["LISTED_TOO"] == "yes"
    assert "SOME_SECRET" not in printed
    assert not [name for name in printed if name.startswith("HOOKAGENT_")]
    everything = "\n".join(e.message for e in entries)
    for secret in ("ghp_worker_secret_value", "sentry_worker_secret_value", "listed_but"):
        assert secret not in everything
