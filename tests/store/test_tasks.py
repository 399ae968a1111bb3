"""Task records against a real Redis/Valkey."""

from __future__ import annotations

import asyncio

import pytest

from hookagent.errors import ConflictError, FencedOut, TaskNotFound
from hookagent.models import TRANSITIONS, Action, NewTask, Phase, TaskStatus, Transition
from hookagent.store import Store
from tests.helpers import move_to

pytestmark = pytest.mark.store


def new_task(title: str = "ZeroDivisionError") -> NewTask:
    return NewTask(source="sentry", repository="acme/payments-api", title=title, prompt="ctx")


async def test_create_get_and_history(store: Store) -> None:
    task = await store.tasks.create(new_task())
    assert task.task_id.startswith("task-")
    got = await store.tasks.get(task.task_id)
    assert got.status is TaskStatus.QUEUED and got.title == "ZeroDivisionError"
    [first] = await store.tasks.history(task.task_id)
    assert first.status is TaskStatus.QUEUED


async def test_ids_are_unique_under_concurrency(store: Store) -> None:
    tasks = await asyncio.gather(*(store.tasks.create(new_task()) for _ in range(500)))
    assert len({t.task_id for t in tasks}) == 500
    listed = await store.tasks.list(status=None, limit=1000)
    assert len(listed) == 500


async def test_list_is_newest_first_and_filters_by_status(store: Store) -> None:
    first = await store.tasks.create(new_task("first"))
    await asyncio.sleep(0.002)  # ids carry ms; make creation order unambiguous
    second = await store.tasks.create(new_task("second"))
    await move_to(store, first.task_id, TaskStatus.FAILED, reason="boom")
    assert [t.title for t in await store.tasks.list(status=None, limit=10)] == ["second", "first"]
    assert [t.task_id for t in await store.tasks.list(status=TaskStatus.FAILED, limit=10)] == [
        first.task_id
    ]
    queued = await store.tasks.list(status=TaskStatus.QUEUED, limit=10)
    assert [t.task_id for t in queued] == [second.task_id]


async def test_claim_fences_out_the_previous_attempt(store: Store) -> None:
    task = await store.tasks.create(new_task())
    one = await store.tasks.claim(task.task_id, token="a", phase=Phase.PLAN)
    two = await store.tasks.claim(task.task_id, token="b", phase=Phase.PLAN)
    assert (one, two) == (1, 2)
    with pytest.raises(FencedOut):
        await store.tasks.advance(task.task_id, Action.FAIL_PLAN, token="a")
    await store.tasks.advance(task.task_id, Action.PLAN_READY, token="b", fields={"plan": "do it"})
    got = await store.tasks.get(task.task_id)
    assert (got.status, got.plan, got.attempt) == (TaskStatus.PENDING_APPROVAL, "do it", 2)


async def test_disallowed_transition_names_the_current_status(store: Store) -> None:
    task = await store.tasks.create(new_task())
    await store.tasks.advance(task.task_id, Action.CANCEL)
    with pytest.raises(ConflictError, match="is cancelled"):
        await store.tasks.claim(task.task_id, token="t", phase=Phase.PLAN)


@pytest.mark.parametrize("action", list(Action))
async def test_the_transition_table_is_what_the_store_enforces(
    store: Store, action: Action
) -> None:
    """Every action from every status: allowed exactly where the one table says so."""
    rule = TRANSITIONS[action]
    for status in TaskStatus:
        task = await store.tasks.create(new_task(f"{action} from {status}"))
        await move_to(store, task.task_id, status)
        if status in rule.allowed:
            assert await store.tasks.advance(task.task_id, action) is status
            assert (await store.tasks.get(task.task_id)).status is rule.to
            assert task.task_id in {
                t.task_id for t in await store.tasks.list(status=rule.to, limit=1000)
            }
        else:
            with pytest.raises(ConflictError, match=f"is {status.value}"):
                await store.tasks.advance(task.task_id, action)
            assert (await store.tasks.get(task.task_id)).status is status


async def test_a_vote_counts_where_the_approve_row_allows_and_nowhere_else(store: Store) -> None:
    """The vote script reads the APPROVE row of the one table, not a status of its own."""
    for status in TaskStatus:
        task = await store.tasks.create(new_task(f"vote in {status}"))
        await move_to(store, task.task_id, status)
        if status in TRANSITIONS[Action.APPROVE].allowed:
            assert await store.tasks.vote(task.task_id, "lee") == (True, ["lee"])
        else:
            with pytest.raises(ConflictError, match=f"is {status.value}"):
                await store.tasks.vote(task.task_id, "lee")
            assert await store.tasks.approvers(task.task_id) == []


async def test_the_vote_script_follows_a_changed_approve_row(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await store.tasks.create(new_task())
    await move_to(store, task.task_id, TaskStatus.FAILED)
    wider = frozenset({TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED})
    monkeypatch.setitem(TRANSITIONS, Action.APPROVE, Transition(wider, TaskStatus.APPROVED))
    assert await store.tasks.vote(task.task_id, "lee") == (True, ["lee"])


async def test_unknown_task(store: Store) -> None:
    with pytest.raises(TaskNotFound):
        await store.tasks.get("task-1-00")
    with pytest.raises(TaskNotFound):
        await store.tasks.advance("task-1-00", Action.CANCEL)
