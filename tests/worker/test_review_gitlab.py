"""The agent as reviewer on GitLab: ``@hookagent review`` in a note on a merge request."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.gitlab_stub import GitLabStub
from tests.helpers import REPO, app_client, fake_agent, wait_status
from tests.worker.test_policies import messages
from tests.worker.test_review import ENDED, MEDIAN, git, remote_refs

TOKEN = "gitlab-review-hook-token"
IID = 7


@pytest.fixture
def merge_sha(remotes: Path, tmp_path: Path) -> tuple[str, str]:
    """Someone's merge request !7: GitLab keeps its head as ``refs/merge-requests/7/head``."""
    bare = remotes / f"{REPO}.git"
    work = tmp_path / "contributor"
    git("clone", "-q", bare, work)
    base = git("rev-parse", "HEAD", cwd=work).strip()
    with (work / "app.py").open("a") as source:
        source.write(MEDIAN)
    git("commit", "-qam", "Add a median", cwd=work)
    git("push", "-q", "origin", f"HEAD:refs/merge-requests/{IID}/head", cwd=work)
    return base, git("rev-parse", "HEAD", cwd=work).strip()


@pytest.fixture
def gitlab(merge_sha: tuple[str, str]) -> Iterator[GitLabStub]:
    base, head = merge_sha
    with GitLabStub() as stub:
        stub.mr_info[IID] = {
            "id": 7007, "iid": IID, "title": "Add a median", "description": "Adds median().",
            "state": "opened", "source_branch": "feature/median", "target_branch": "main",
            "sha": head, "author": {"id": 31, "username": "pat-dev"},
            "web_url": f"https://gitlab.example.com/{REPO}/-/merge_requests/{IID}",
            "diff_refs": {"base_sha": base, "start_sha": base, "head_sha": head},
        }  # fmt: skip
        yield stub


@pytest.fixture
def forge(gitlab: GitLabStub, remotes: Path) -> dict[str, Any]:
    return {
        "gitlab_api_url": gitlab.api_url,
        "gitlab_token": SecretStr(GitLabStub.TOKEN),
        "gitlab_url_template": f"file://{remotes}/{{repo}}.git",
        "gitlab_webhook_secret": SecretStr(TOKEN),
        "gitlab_approvers": "lee-lead",
        "agent_command": fake_agent("review"),
    }


@pytest.fixture
async def http(
    settings: Settings, forge: dict[str, Any], redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings.model_copy(update=forge), redis) as client:
        yield client


def note(body: str = "@hookagent review", *, username: str = "lee-lead") -> dict[str, Any]:
    """GitLab's Note Hook for a new note on merge request !7."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return {
        "object_kind": "note", "event_type": "note",
        "user": {"id": 41, "username": username, "name": username},
        "project": {"id": 1207, "path_with_namespace": REPO},
        "object_attributes": {
            "id": 1244, "note": body, "noteable_type": "MergeRequest", "action": "create",
            "system": False, "created_at": stamp,
            "url": f"https://gitlab.example.com/{REPO}/-/merge_requests/{IID}#note_1244",
        },
        "merge_request": {"id": 7007, "iid": IID, "title": "Add a median"},
    }  # fmt: skip


async def deliver(http: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    headers = {"content-type": "application/json", "x-gitlab-event": "Note Hook",
               "x-gitlab-event-uuid": "u-1", "x-gitlab-token": TOKEN}  # fmt: skip
    return await http.post("/webhooks/gitlab", content=json.dumps(payload), headers=headers)


async def test_review_note_starts_discussions_on_the_merge_request(
    http: httpx.AsyncClient, store: Store, start_worker: RunWorker, forge: dict[str, Any],
    gitlab: GitLabStub, merge_sha: tuple[str, str], remotes: Path,
) -> None:  # fmt: skip
    before = remote_refs(remotes)
    start_worker(**forge)
    response = await deliver(http, note())
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    status = await wait_status(store, task_id, ENDED)
    assert status is TaskStatus.COMPLETED, await messages(store, task_id)

    base, head = merge_sha
    placed = [d["notes"][0] for d in gitlab.discussions if d["notes"][0]["position"]]
    assert [(n["position"]["new_path"], n["position"]["new_line"]) for n in placed] == [
        ("app.py", 3),
        ("app.py", 4),
    ]
    assert all(n["position"]["head_sha"] == head for n in placed)
    assert all(n["position"]["base_sha"] == base for n in placed)
    [summary] = [d["notes"][0] for d in gitlab.discussions if not d["notes"][0]["position"]]
    assert "The median is right" in summary["body"] and "**app.py:40**" in summary["body"]
    assert remote_refs(remotes) == before


async def test_review_note_from_someone_not_allowed_does_nothing(
    http: httpx.AsyncClient, gitlab: GitLabStub
) -> None:
    response = await deliver(http, note(username="mallory"))
    assert response.status_code == 403, response.text
    assert gitlab.discussions == []
