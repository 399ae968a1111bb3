"""Task records against a real Redis/Valkey."""

from __future__ import annotations

import asyncio

import pytest

from hookagent.errors import ConflictError, FencedOut, TaskNotFound
from hookagent.models import NewTask, TaskStatus
from hookagent.store import Store

pytestmark = pytest.mark.store


def new_task(title: str = "ZeroDivisionError") -> NewTask:
    return NewTask(source="sentry", repository="acme/payments-api", title=title, prompt="ctx")


async def test_create_get_and_history(store: Store) -> None:
    task = await store.tasks.create(new_task(), queue="planning-queue")
    assert task.task_id.startswith("task-")
    got = await store.tasks.get(task.task_id)
    assert got.status is TaskStatus.QUEUED and got.title == "ZeroDivisionError"
    [first] = await store.tasks.history(task.task_id)
    assert first.status is TaskStatus.QUEUED


async def test_ids_are_unique_under_concurrency(store: Store) -> None:
    tasks = await asyncio.gather(*(store.tasks.create(new_task(), queue="q") for _ in range(500)))
    assert len({t.task_id for t in tasks}) == 500
    listed = await store.tasks.list(status=None, limit=1000)
    assert len(listed) == 500


async def test_list_is_newest_first_and_filters_by_status(store: Store) -> None:
    first = await store.tasks.create(new_task("first"), queue="q")
    await asyncio.sleep(0.002)  # ids carry ms; make creation order unambiguous
    second = await store.tasks.create(new_task("second"), queue="q")
    await store.tasks.advance(first.task_id, TaskStatus.FAILED, reason="boom")
    assert [t.title for t in await store.tasks.list(status=None, limit=10)] == ["second", "first"]
    assert [t.task_id for t in await store.tasks.list(status=TaskStatus.FAILED, limit=10)] == [
        first.task_id
    ]
    queued = await store.tasks.list(status=TaskStatus.QUEUED, limit=10)
    assert [t.task_id for t in queued] == [second.task_id]


async def test_claim_fences_out_the_previous_attempt(store: Store) -> None:
    task = await store.tasks.create(new_task(), queue="q")
    allowed = (TaskStatus.QUEUED, TaskStatus.DISCOVERING)
    one = await store.tasks.claim(
        task.task_id, token="a", status=TaskStatus.DISCOVERING, allowed=allowed
    )
    two = await store.tasks.claim(
        task.task_id, token="b", status=TaskStatus.DISCOVERING, allowed=allowed
    )
    assert (one, two) == (1, 2)
    with pytest.raises(FencedOut):
        await store.tasks.advance(task.task_id, TaskStatus.FAILED, token="a")
    await store.tasks.advance(
        task.task_id, TaskStatus.PENDING_APPROVAL, token="b", fields={"plan": "do it"}
    )
    got = await store.tasks.get(task.task_id)
    assert (got.status, got.plan, got.attempt) == (TaskStatus.PENDING_APPROVAL, "do it", 2)


async def test_disallowed_transition_names_the_current_status(store: Store) -> None:
    task = await store.tasks.create(new_task(), queue="q")
    await store.tasks.advance(task.task_id, TaskStatus.CANCELLED)
    with pytest.raises(ConflictError, match="is cancelled"):
        await store.tasks.claim(
            task.task_id, token="t", status=TaskStatus.DISCOVERING, allowed=(TaskStatus.QUEUED,)
        )


async def test_unknown_task(store: Store) -> None:
    with pytest.raises(TaskNotFound):
        await store.tasks.get("task-1-00")
    with pytest.raises(TaskNotFound):
        await store.tasks.advance("task-1-00", TaskStatus.FAILED)
