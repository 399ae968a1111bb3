"""After the pull request: its merge or close ends the task, and ``/stats`` counts it."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.models import Action, NewTask, Task, TaskStatus, utc_iso
from hookagent.notify import slack
from hookagent.notify.slack_blocks import outcome_message, parent_message
from hookagent.notify.webhooks import PUBLIC_EVENTS
from hookagent.notify.webhooks import body as webhook_body
from hookagent.services.stats import summarize
from hookagent.settings import Settings
from hookagent.store import ChangeRecord, OutboxEvent, Store
from tests.conftest import RunWorker
from tests.github_stub import GitHubStub
from tests.helpers import FIXTURES, REPO, app_client, fake_agent, move_to, wait_status

SECRET = "gh-webhook-s3cret"
GITLAB_TOKEN = "gitlab-hook-token-5d1e0c"
GITLAB_REPO = "acme/platform/payments-api"
ALERT = (FIXTURES / "sentry-event-alert.json").read_bytes()
JSON = {"content-type": "application/json"}
ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        yield stub


@pytest.fixture
def own(settings: Settings, github: GitHubStub) -> Settings:
    return settings.model_copy(
        update={
            "github_api_url": github.url,
            "github_token": SecretStr("ghp_test_token_value"),
            "github_webhook_secret": SecretStr(SECRET),
            "gitlab_webhook_secret": SecretStr(GITLAB_TOKEN),
        }
    )


@pytest.fixture
async def http(own: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(own, redis) as client:
        yield client


async def pull_request(
    http: httpx.AsyncClient, payload: dict[str, Any], delivery: str, *, sign: bool = True
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = JSON | {"x-github-event": "pull_request", "x-github-delivery": delivery}
    if sign:
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers["x-hub-signature-256"] = f"sha256={digest}"
    return await http.post("/webhooks/github", content=body, headers=headers)


async def merge_request(
    http: httpx.AsyncClient, payload: dict[str, Any], delivery: str
) -> httpx.Response:
    headers = JSON | {
        "x-gitlab-event": "Merge Request Hook",
        "x-gitlab-event-uuid": delivery,
        "x-gitlab-token": GITLAB_TOKEN,
    }
    return await http.post("/webhooks/gitlab", content=json.dumps(payload), headers=headers)


async def delivered(store: Store, *, forge: str = "github", repo: str = REPO, number: int) -> str:
    """A task whose change request ``repo!number`` is open (as the publisher leaves it)."""
    new = NewTask(source="sentry", repository=repo, title="t", prompt="p", forge=forge)
    task = await store.tasks.create(new)
    opened = {
        "pr_number": str(number),
        "pr_opened_at": utc_iso(),
        "branch": f"hookagent/{task.task_id}",
        "agent": "command",
    }
    await move_to(store, task.task_id, TaskStatus.COMPLETED, fields=opened)
    await store.refs.link(forge, f"{repo}!{number}", task.task_id)
    return task.task_id


def closed(number: int, *, merged: bool) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / "github-pull-request-closed.json").read_text())
    payload["pull_request"].update(number=number, id=7_000_000 + number, merged=merged)
    return payload


async def test_merged_pull_request_ends_the_task_and_stats_count_it(
    own: Settings,
    http: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker,
    github: GitHubStub,
) -> None:
    start_worker(agent_command=fake_agent("auto"), github_api_url=github.url,
                 github_token=SecretStr("ghp_test_token_value"))  # fmt: skip
    created = await http.post("/webhooks/sentry", content=ALERT, headers=JSON)
    tid = created.json()["task_id"]
    assert await wait_status(store, tid, {TaskStatus.PENDING_APPROVAL}) is not None
    assert (await http.post(f"/tasks/{tid}/approve")).status_code == 200
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    task = await store.tasks.get(tid)
    number = task.pr_number
    assert number is not None and task.pr_opened_at and task.branch == f"hookagent/{tid}"
    # What a regression's prompt will quote: the executed change's diff stat.
    assert task.diff_stat and "1 file changed" in task.diff_stat
    # The publisher linked the pull request as ``owner/repo!<number>``.
    assert await store.refs.task_for("github", f"{REPO}!{number}") == tid

    merged = await pull_request(http, github.closed_event(number, merged=True), "d-1")
    assert merged.status_code == 200, merged.text
    assert merged.json() == {"task_id": tid, "status": "merged", "previous": "completed"}
    task = await store.tasks.get(tid)
    assert task.status is TaskStatus.MERGED and task.pr_ended_at == "2026-03-02T15:40:51.000Z"
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    assert (f"[system] status merged: pull request #{number} merged by lee-lead (github)") in [
        e.message for e in entries
    ]

    # Redelivered (same header), or replayed under a new header: the same event, once.
    event = github.closed_event(number, merged=True)
    again = await pull_request(http, event, "d-1")
    replay = await pull_request(http, event, "d-2")
    assert again.json()["status"] == replay.json()["status"] == "duplicate"

    stats = (await http.get("/stats")).json()
    assert stats["total"] | {"median_time_to_merge_s": None} == {
        "repository": None, "source": None, "agent": None, "opened": 1, "merged": 1,
        "closed_unmerged": 0, "merge_rate": 1.0, "median_time_to_merge_s": None,
        "rounds_per_pr": 0.0, "ci_fixes_per_pr": 0.0,
    }  # fmt: skip
    assert stats["total"]["median_time_to_merge_s"] is not None
    [group] = stats["groups"]
    assert (group["repository"], group["source"], group["agent"]) == (REPO, "sentry", "command")
    metrics = (await http.get("/metrics")).text
    assert "hookagent_tasks_merged_total 1.0" in metrics
    assert "hookagent_time_to_merge_seconds_count 1.0" in metrics
    assert "hookagent_review_rounds_total 0.0" in metrics


async def test_closed_unmerged_pull_request_ends_the_task_as_closed(
    http: httpx.AsyncClient, store: Store
) -> None:
    merged_tid = await delivered(store, number=41)
    closed_tid = await delivered(store, number=42)
    open_tid = await delivered(store, number=43)
    assert (await pull_request(http, closed(41, merged=True), "d-41")).status_code == 200
    answer = await pull_request(http, closed(42, merged=False), "d-42")
    assert answer.json() == {"task_id": closed_tid, "status": "closed", "previous": "completed"}
    assert (await store.tasks.get(closed_tid)).status is TaskStatus.CLOSED
    assert (await store.tasks.get(open_tid)).status is TaskStatus.COMPLETED
    stats = (await http.get("/stats")).json()["total"]
    assert (stats["opened"], stats["merged"], stats["closed_unmerged"]) == (3, 1, 1)
    assert stats["merge_rate"] == 0.5
    # An ended request ends nothing twice: a close after the merge is refused, and logged.
    late = await pull_request(http, closed(41, merged=False), "d-41b")
    assert late.json()["status"] == "ignored" and late.json()["task_id"] == merged_tid
    assert (await store.tasks.get(merged_tid)).status is TaskStatus.MERGED
    metrics = (await http.get("/metrics")).text
    assert "hookagent_tasks_merged_total 1.0" in metrics
    assert "hookagent_tasks_closed_unmerged_total 1.0" in metrics


async def test_an_unsigned_close_changes_nothing(
    settings: Settings, redis: Redis, store: Store
) -> None:
    tid = await delivered(store, number=41)
    # No secret configured: the delivery arrives unsigned and may not end a task.
    async with app_client(settings, redis) as unsigned:
        answer = await pull_request(unsigned, closed(41, merged=True), "d-1", sign=False)
    assert answer.status_code == 401, answer.text
    assert "signed delivery" in answer.json()["detail"]
    assert (await store.tasks.get(tid)).status is TaskStatus.COMPLETED


async def test_a_forged_signature_changes_nothing(http: httpx.AsyncClient, store: Store) -> None:
    tid = await delivered(store, number=41)
    body = json.dumps(closed(41, merged=True)).encode()
    headers = JSON | {
        "x-github-event": "pull_request",
        "x-github-delivery": "d-1",
        "x-hub-signature-256": "sha256=" + "0" * 64,
    }
    answer = await http.post("/webhooks/github", content=body, headers=headers)
    assert answer.status_code == 401
    assert (await store.tasks.get(tid)).status is TaskStatus.COMPLETED


async def test_a_pull_request_no_task_opened_is_ignored(
    http: httpx.AsyncClient, store: Store
) -> None:
    answer = await pull_request(http, closed(99, merged=True), "d-1")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ignored" and answer.json()["task_id"] is None
    assert (await http.get("/stats")).json()["total"]["opened"] == 0


async def test_an_end_while_the_task_is_not_delivered_is_logged_and_changes_nothing(
    http: httpx.AsyncClient, store: Store
) -> None:
    task = await store.tasks.create(
        NewTask(source="sentry", repository=REPO, title="t", prompt="p")
    )
    await move_to(store, task.task_id, TaskStatus.EXECUTING)
    await store.refs.link("github", f"{REPO}!41", task.task_id)
    answer = await pull_request(http, closed(41, merged=True), "d-1")
    assert answer.json()["status"] == "ignored"
    assert (await store.tasks.get(task.task_id)).status is TaskStatus.EXECUTING
    entries, _ = await store.logs.read(task.task_id, offset=0, limit=-1)
    assert any(
        e.message.startswith("[system] pull request #41 merged by lee-lead ignored")
        for e in entries
    )


async def test_a_revising_task_ends_too(http: httpx.AsyncClient, store: Store) -> None:
    tid = await delivered(store, number=41)
    await store.tasks.advance(tid, Action.START_ROUND, reason="review round")
    answer = await pull_request(http, closed(41, merged=False), "d-1")
    assert answer.json() == {"task_id": tid, "status": "closed", "previous": "revising"}


async def test_gitlab_merge_and_close(http: httpx.AsyncClient, store: Store) -> None:
    merged = await delivered(store, forge="gitlab", repo=GITLAB_REPO, number=1)
    closed_tid = await delivered(store, forge="gitlab", repo=GITLAB_REPO, number=2)
    payload = json.loads((FIXTURES / "gitlab-merge-request-merged.json").read_text())
    answer = await merge_request(http, payload, "u-1")
    assert answer.json() == {"task_id": merged, "status": "merged", "previous": "completed"}
    payload["object_attributes"].update(iid=2, id=884212, action="close", state="closed")
    answer = await merge_request(http, payload, "u-2")
    assert answer.json() == {"task_id": closed_tid, "status": "closed", "previous": "completed"}
    entries, _ = await store.logs.read(closed_tid, offset=0, limit=-1)
    assert "[system] status closed: merge request !2 closed unmerged by lee-lead" in (
        " ".join(e.message for e in entries)
    )
    [group] = (await http.get("/stats")).json()["groups"]
    assert (group["repository"], group["merged"], group["closed_unmerged"]) == (GITLAB_REPO, 1, 1)


async def test_a_sentry_alert_after_the_merge_starts_a_linked_regression(
    http: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    first = await http.post("/webhooks/sentry", content=ALERT, headers=JSON)
    old = first.json()["task_id"]
    shipped = {
        "plan": "PLAN: guard the division in compute_ratio",
        "diff_stat": " app.py | 3 ++-\n 1 file changed, 2 insertions(+), 1 deletion(-)",
        "pr_number": "41",
        "pr_url": f"https://github.com/{REPO}/pull/41",
        "pr_opened_at": utc_iso(),
    }
    await move_to(store, old, TaskStatus.COMPLETED, fields=shipped)
    # Before the merge the same alert is the same incident: no second task.
    before = await http.post("/webhooks/sentry", content=ALERT, headers=JSON)
    assert before.json()["task_id"] == old
    await store.refs.link("github", f"{REPO}!41", old)
    assert (await pull_request(http, closed(41, merged=True), "d-1")).json()["status"] == "merged"

    again = await http.post("/webhooks/sentry", content=ALERT, headers=JSON)
    assert again.status_code == 202, again.text
    new = await store.tasks.get(again.json()["task_id"])
    assert new.task_id != old and new.regression_of == old
    assert f"task {old} (https://github.com/{REPO}/pull/41)" in new.prompt
    assert "PLAN: guard the division in compute_ratio" in new.prompt
    assert "1 file changed, 2 insertions(+), 1 deletion(-)" in new.prompt
    entries, _ = await store.logs.read(old, offset=0, limit=-1)
    assert f"[system] regressed after merge: {new.task_id}" in [e.message for e in entries]
    assert (await store.tasks.get(old)).status is TaskStatus.MERGED
    # The regression is now the open task for the incident: the alert again is a duplicate.
    third = await http.post("/webhooks/sentry", content=ALERT, headers=JSON)
    assert third.json()["task_id"] == new.task_id and third.json()["duplicate"] is True


async def test_an_alert_after_a_close_unmerged_is_no_regression(
    http: httpx.AsyncClient, store: Store
) -> None:
    old = (await http.post("/webhooks/sentry", content=ALERT, headers=JSON)).json()["task_id"]
    await move_to(store, old, TaskStatus.CLOSED, fields={"pr_number": "41"})
    again = await http.post("/webhooks/sentry", content=ALERT, headers=JSON)
    # Within the dedupe window the alert is the delivery seen before; nothing regressed.
    assert again.json()["task_id"] == old and again.json()["duplicate"] is True
    entries, _ = await store.logs.read(old, offset=0, limit=-1)
    assert not any("regressed" in e.message for e in entries)


def test_slack_says_a_task_is_a_regression(settings: Settings) -> None:
    task = Task(
        task_id="task-2-b", source="sentry", repository=REPO, title="t", prompt="p",
        status=TaskStatus.QUEUED, created_at=utc_iso(), updated_at=utc_iso(),
        regression_of="task-1-a",
    )  # fmt: skip
    _, blocks = parent_message(task, settings, None)
    texts = json.dumps(blocks)
    assert "Regressed after merge" in texts and "/ui/tasks/task-1-a|task-1-a" in texts


def test_stats_of_a_group_take_the_median_and_the_rates_per_request() -> None:
    def record(status: TaskStatus, hours: float | None, rounds: int = 0) -> ChangeRecord:
        ended = None if hours is None else utc_iso(1_772_442_000 + hours * 3600)
        return ChangeRecord(
            task_id="t", status=status, repository=REPO, source="sentry", agent="claude",
            opened_at=utc_iso(1_772_442_000), ended_at=ended, review_rounds=rounds, ci_fixes=1,
        )  # fmt: skip

    merged = [record(TaskStatus.MERGED, h, rounds=r) for h, r in ((1, 0), (2, 3), (10, 1))]
    rows = [*merged, record(TaskStatus.CLOSED, 5), record(TaskStatus.COMPLETED, None)]
    stats = summarize(rows, repository=REPO)
    assert (stats.opened, stats.merged, stats.closed_unmerged) == (5, 3, 1)
    assert stats.merge_rate == 0.75 and stats.median_time_to_merge_s == 7200
    assert (stats.rounds_per_pr, stats.ci_fixes_per_pr) == (0.8, 1.0)
    assert summarize([]).merge_rate is None and summarize([]).opened == 0


@pytest.mark.parametrize(
    ("status", "name", "said"),
    [(TaskStatus.MERGED, "task.merged", "*Merged*"), (TaskStatus.CLOSED, "task.closed", "*Closed")],
)
def test_notifications_say_how_the_request_ended(
    settings: Settings, status: TaskStatus, name: str, said: str
) -> None:
    task = Task(
        task_id="task-2-b", source="sentry", repository=REPO, title="t", prompt="p",
        status=status, created_at=utc_iso(), updated_at=utc_iso(), pr_number=41,
        pr_url=f"https://github.com/{REPO}/pull/41", pr_ended_at=utc_iso(),
    )  # fmt: skip
    event = OutboxEvent("1-0", task.task_id, status.value, "completed", utc_iso(), 1, "")
    assert event.name == name and event.name in PUBLIC_EVENTS  # receivers may rely on it
    sent = webhook_body(event, task)
    assert sent["status"] == status.value and sent["task"]["pr_ended_at"] == task.pr_ended_at
    outcome = outcome_message(task, status, [])
    assert outcome is not None and said in json.dumps(outcome[1])
    assert f"<{task.pr_url}|pull request>" in outcome[1][0]["text"]["text"]
    assert status in slack.ENDINGS
