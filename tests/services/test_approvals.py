"""Approval policies on the lifecycle: several distinct approvers before execution."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from hookagent.errors import ConflictError
from hookagent.models import NewTask, TaskStatus
from hookagent.services.lifecycle import Lifecycle
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import REPO, app_client, move_to

POLICY = f"""\
[default]
approvals = 1

[repo."{REPO}"]
approvals = 2
paths_denied = ["infra/**"]
"""


@pytest.fixture
def policed(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "hookagent.toml"
    path.write_text(POLICY)
    return settings.model_copy(update={"policy_file": path})


async def pending(store: Store, repo: str = REPO) -> str:
    task = await store.tasks.create(
        NewTask(source="sentry", repository=repo, title="boom", prompt="ZeroDivisionError")
    )
    await move_to(store, task.task_id, TaskStatus.PENDING_APPROVAL)
    return task.task_id


async def system_lines(store: Store, task_id: str) -> list[str]:
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return [e.message for e in entries if "] approv" in e.message or "approved: " in e.message]


async def test_two_distinct_approvers_are_needed(store: Store, policed: Settings) -> None:
    life = Lifecycle(store, policed)
    tid = await pending(store)
    first = await life.approve(tid, actor="lee", voter="api:lee", comment="looks right")
    assert (first.status, first.previous) == (TaskStatus.PENDING_APPROVAL,) * 2
    again = await life.approve(tid, actor="lee", voter="api:lee")
    assert again.status is TaskStatus.PENDING_APPROVAL  # the same person counts once
    assert (await store.tasks.get(tid)).status is TaskStatus.PENDING_APPROVAL
    second = await life.approve(tid, actor="kim", voter="api:kim")
    assert (second.status, second.previous) == (TaskStatus.APPROVED, TaskStatus.PENDING_APPROVAL)
    task = await store.tasks.get(tid)
    assert task.approver == "kim, lee"
    assert await store.tasks.approvers(tid) == ["api:kim\tkim", "api:lee\tlee"]
    assert await system_lines(store, tid) == [
        "[system] approved by lee (1 of 2): looks right",
        "[system] approval already counted by lee (1 of 2)",
        "[system] status approved: approved by kim (2 of 2)",
    ]
    # The execution job was queued with the approving transition, once.
    assert [h.status for h in await store.tasks.history(tid)][-1] is TaskStatus.APPROVED


async def test_votes_count_per_voter_whatever_name_they_carry(
    store: Store, policed: Settings
) -> None:
    life = Lifecycle(store, policed)
    tid = await pending(store)
    await life.approve(tid, actor="Lee Lead (linear)", voter="linear:u-1")
    again = await life.approve(tid, actor="Lee L. (linear)", voter="linear:u-1")
    assert again.status is TaskStatus.PENDING_APPROVAL
    # Both names are kept beside the one voter; the count is of voters.
    assert await store.tasks.approvers(tid) == [
        "linear:u-1\tLee L. (linear)",
        "linear:u-1\tLee Lead (linear)",
    ]
    lines = await system_lines(store, tid)
    assert lines[-1] == "[system] approval already counted by Lee L. (linear) (1 of 2)"
    done = await life.approve(tid, actor="kim (github)", voter="github:kim")
    assert done.status is TaskStatus.APPROVED
    # People's names, once per voter, not the ids votes are counted under.
    assert (await store.tasks.get(tid)).approver == "kim (github), Lee L. (linear)"
    assert (await system_lines(store, tid))[-1] == (
        "[system] status approved: approved by kim (github) (2 of 2)"
    )


async def test_a_vote_on_a_task_not_waiting_is_refused(store: Store, policed: Settings) -> None:
    life = Lifecycle(store, policed)
    tid = await pending(store)
    await life.reject(tid, actor="lee")
    with pytest.raises(ConflictError, match="is rejected"):
        await life.approve(tid, actor="kim", voter="api:kim")
    assert await store.tasks.approvers(tid) == []


async def test_other_repositories_keep_one_approval(store: Store, policed: Settings) -> None:
    tid = await pending(store, "acme/other")
    result = await Lifecycle(store, policed).approve(tid, actor="lee", voter="api:lee")
    assert result.status is TaskStatus.APPROVED
    # Logged once, by the transition (it used to be a second ``[system] approved by`` line).
    assert await system_lines(store, tid) == ["[system] status approved: approved by lee"]


async def test_the_api_shows_effective_policies(policed: Settings, redis: Redis) -> None:
    async with app_client(policed, redis) as http:
        body = (await http.get("/policies")).json()
    assert body["file"] == str(policed.policy_file)
    assert body["loaded_at"]
    assert body["default"]["approvals"] == 1
    assert body["repos"][REPO]["approvals"] == 2
    assert body["repos"][REPO]["paths_denied"] == ["infra/**"]


async def test_the_api_approves_only_at_the_count(policed: Settings, redis: Redis) -> None:
    store = Store.build(redis, policed)
    tid = await pending(store)
    async with app_client(policed, redis) as http:
        first = (await http.post(f"/tasks/{tid}/approve")).json()
        assert first["status"] == "pending_approval"
    assert (await store.tasks.get(tid)).status is TaskStatus.PENDING_APPROVAL
