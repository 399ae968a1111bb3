"""GitLab end to end: a labelled issue in a nested group becomes a merge request.

The Issue Hook starts a task; the fake agent plans; the issue gets one note, edited in place
(PUT) as the task moves; an approver's ``@hookagent approve`` note (with the right
``X-Gitlab-Token``) runs the execution; the branch is pushed to the nested project and the
merge request opened on the GitLab stub, with the task recording its URL.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
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
from tests.gitlab_stub import WEB, GitLabStub
from tests.helpers import FIXTURES, app_client, fake_agent, just_written, make_remote, wait_status
from tests.notify.conftest import StartNotifier

PROJECT = "acme/platform/payments-api"
ENCODED = "acme%2Fplatform%2Fpayments-api"
TOKEN = "gitlab-hook-token-5d1e0c"
PUBLIC = "https://hookagent.example"


@pytest.fixture
def gitlab() -> Iterator[GitLabStub]:
    with GitLabStub() as stub:
        yield stub


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


async def deliver(
    http: httpx.AsyncClient, event: str, body: dict[str, Any], uuid: str
) -> httpx.Response:
    headers = {
        "content-type": "application/json",
        "x-gitlab-event": event,
        "x-gitlab-event-uuid": uuid,
        "x-gitlab-token": TOKEN,
        "x-gitlab-instance": WEB,
    }
    sent = just_written(body) if event == "Note Hook" else body  # a note written now
    return await http.post("/webhooks/gitlab", content=json.dumps(sent), headers=headers)


def branches(bare: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(bare), "branch", "--list"], capture_output=True, text=True, check=True
    ).stdout


async def test_labelled_issue_to_merge_request_with_one_note(
    settings: Settings,
    redis: Redis,
    store: Store,
    start_worker: RunWorker,
    start_notifier: StartNotifier,
    gitlab: GitLabStub,
    tmp_path: Path,
) -> None:
    # GitLab's remotes live apart from HOOKAGENT_GIT_URL_TEMPLATE's: only its template finds them.
    bare = make_remote(tmp_path / "gitlab", PROJECT)
    overrides: dict[str, Any] = {
        "agent_command": fake_agent("auto"),
        "gitlab_api_url": gitlab.api_url,
        "gitlab_token": SecretStr(GitLabStub.TOKEN),
        "gitlab_webhook_secret": SecretStr(TOKEN),
        "gitlab_approvers": "lee-lead",
        "gitlab_url_template": f"file://{tmp_path / 'gitlab'}/{{repo}}.git",
        "public_url": PUBLIC,
    }
    own = settings.model_copy(update=overrides)
    start_notifier(own)
    start_worker(**overrides)
    async with app_client(own, redis) as http:
        created = await deliver(http, "Issue Hook", payload("gitlab-issue-labeled.json"), "e-1")
        assert created.status_code == 202, created.text
        tid = created.json()["task_id"]
        task = await store.tasks.get(tid)
        assert (task.source, task.forge, task.repository) == ("gitlab", "gitlab", PROJECT)
        assert task.external_id == f"{PROJECT}#57"
        assert await wait_status(store, tid, {TaskStatus.PENDING_APPROVAL}) is not None
        # The plan is on the issue before anyone approves it.
        await asyncio.to_thread(
            gitlab.wait_for,
            lambda: any("@hookagent approve" in n["body"] for n in gitlab.notes.values()),
        )

        approved = await deliver(http, "Note Hook", payload("gitlab-note-approve.json"), "e-2")
        assert approved.status_code == 200, approved.text
        assert approved.json() == {
            "task_id": tid,
            "status": "approved",
            "previous": "pending_approval",
        }
        ended = await wait_status(store, tid, {TaskStatus.COMPLETED, TaskStatus.FAILED})
        assert ended is TaskStatus.COMPLETED, (await store.tasks.get(tid)).error

        # The merge request: from the pushed branch into the default one.
        [opened] = [r for r in gitlab.requests if r["path"].endswith("/merge_requests")]
        assert opened["path"] == f"/api/v4/projects/{ENCODED}/merge_requests"
        assert opened["headers"]["PRIVATE-TOKEN"] == GitLabStub.TOKEN
        body = opened["body"]
        assert (body["source_branch"], body["target_branch"]) == (f"hookagent/{tid}", "main")
        assert f"{PUBLIC}/tasks/{tid}" in body["description"]
        assert f"hookagent/{tid}" in branches(bare)
        task = await store.tasks.get(tid)
        assert task.pr_url == f"{WEB}/{PROJECT}/-/merge_requests/1" and task.pr_number == 1

        # A note on the merge request acts on the same task.
        on_mr = payload("gitlab-note-approve.json")
        on_mr["object_attributes"].update(
            id=1913403, noteable_type="MergeRequest", note="@hookagent status"
        )  # a new note: its own id
        on_mr["merge_request"] = {"iid": 1, "title": body["title"], "state": "opened"}
        status = await deliver(http, "Note Hook", on_mr, "e-3")
        assert status.json()["task_id"] == tid and status.json()["status"] == "completed"

    # The issue: one note, created once, then edited in place as the task moved.
    await asyncio.to_thread(
        gitlab.wait_for, lambda: any(task.pr_url in n["body"] for n in gitlab.notes.values())
    )
    writes = gitlab.note_requests()
    assert writes[0]["method"] == "POST" and len(gitlab.notes) == 1
    assert writes[0]["path"] == f"/api/v4/projects/{ENCODED}/issues/57/notes"
    [note_id] = gitlab.notes
    assert {(w["method"], w["path"]) for w in writes[1:]} == {
        ("PUT", f"/api/v4/projects/{ENCODED}/issues/57/notes/{note_id}")
    }
    assert len(writes) >= 3  # created, plan ready, …, completed
    final = gitlab.notes[note_id]["body"]
    assert f"<!-- hookagent:{tid} -->" in final and "Completed" in final
    assert f"Merge request: {task.pr_url}" in final
    assert any("HOOKAGENT_GITLAB_APPROVERS" in w["body"]["body"] for w in writes)

    # hookagent's own note comes back as a Note Hook: it is not a command.
    async with app_client(own, redis) as http:
        echo = payload("gitlab-note-approve.json")
        echo["object_attributes"]["note"] = final
        echoed = await deliver(http, "Note Hook", echo, "e-4")
        assert echoed.json()["status"] == "ignored" and "marker" in echoed.json()["reason"]
