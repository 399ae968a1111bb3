"""Review feedback in Redis: once per comment id, one round job at a time, rounds kept in order."""

from __future__ import annotations

import pytest

from hookagent.errors import TaskNotFound
from hookagent.models import NewTask
from hookagent.store import Store
from tests.helpers import REPO


async def jobs(store: Store) -> int:
    return int(await store.redis.xlen(store.jobs.key))


async def test_feedback_is_kept_once_and_queues_one_round_job(store: Store) -> None:
    task = await store.tasks.create(
        NewTask(source="github", repository=REPO, title="t", prompt="p")
    )
    tid, planning = task.task_id, await jobs(store)
    reviews = store.reviews
    first = await reviews.add(tid, {"body": "a"}, feedback_id="review-comment:1", now_ms=1000)
    assert (first.added, first.queued) == (True, True)
    again = await reviews.add(tid, {"body": "a"}, feedback_id="review-comment:1", now_ms=1001)
    assert (again.added, again.queued) == (False, False)  # a retried delivery adds nothing
    second = await reviews.add(tid, {"body": "b"}, feedback_id="review-comment:2", now_ms=1500)
    assert (second.added, second.queued) == (True, False)  # joins the queued round
    assert await jobs(store) == planning + 1
    assert await reviews.state(tid) == (1500, 0)

    taken = await reviews.take(tid)
    assert (taken.number, [i["body"] for i in taken.items]) == (1, ["a", "b"])
    # Taken again (its worker died): the same round, not a new one.
    assert (await reviews.take(tid)).number == 1
    during = await reviews.add(tid, {"body": "c"}, feedback_id="review-comment:3", now_ms=2000)
    assert (during.added, during.queued) == (True, False)  # waits for the next round
    await reviews.close(tid, {"number": 1, "items": taken.items, "outcome": "pushed"})
    assert await reviews.next_round(tid) is True
    assert await jobs(store) == planning + 2

    last = await reviews.take(tid)
    assert (last.number, [i["body"] for i in last.items]) == (2, ["c"])
    await reviews.close(tid, {"number": 2, "items": last.items, "outcome": "no change needed"})
    assert await reviews.next_round(tid) is False  # nothing pending: no round job left
    assert [r["number"] for r in await reviews.rounds(tid)] == [1, 2]
    assert (await reviews.add(tid, {"body": "d"}, feedback_id=None, now_ms=3000)).queued
    assert await reviews.drop(tid) == 1
    assert (await reviews.add(tid, {"body": "e"}, feedback_id=None, now_ms=3100)).queued
    assert (await store.tasks.get(tid)).review_rounds == 2


async def test_feedback_for_a_task_that_is_gone_is_refused(store: Store) -> None:
    with pytest.raises(TaskNotFound):
        await store.reviews.add("task-1-abc", {"body": "a"}, feedback_id=None, now_ms=1)
