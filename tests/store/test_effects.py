"""Effects: a task change's writes to other slots, applied once even when a process dies."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

from hookagent.errors import ConflictError
from hookagent.models import Action, NewTask, Phase, Task, TaskStatus, new_task_id, utc_iso
from hookagent.store import Marks, Store
from hookagent.store.client import Command, batch, is_cluster
from tests.helpers import move_to

pytestmark = pytest.mark.store


def new_task(title: str = "KeyError in checkout") -> NewTask:
    return NewTask(source="sentry", repository="acme/payments-api", title=title, prompt="ctx")


def redis(store: Store) -> Any:
    """The store's client, either kind (replies are str)."""
    return store.redis


async def lengths(store: Store) -> tuple[int, int, int]:
    """Entries in the job stream, the outbox and the board stream."""
    k, r = store.keys, redis(store)
    return (
        await r.xlen(store.jobs.key),
        await r.xlen(k.outbox()),
        await r.xlen(k.events()),
    )


async def record_only(store: Store, task_id: str, enqueue: Phase) -> None:
    """The first half of an approval: its script ran, then its process died (nothing applied)."""
    k = store.keys
    await store.tasks.effects.begin(task_id)
    args = [
        "free",
        "",
        TaskStatus.APPROVED.value,
        TaskStatus.PENDING_APPROVAL.value,
        "2026-01-01T00:00:00Z",
        "",
        "60000",
        store.jobs.message(task_id, enqueue),
        "60000",
        task_id,
        k.outbox(),
        k.events(),
        store.jobs.key,
        k.tasks_by_status(""),
        "0",
    ]
    keys = [k.task(task_id), k.history(task_id), k.logs(task_id), k.effects(task_id)]
    await store.tasks._transition(keys=keys, args=args)


async def test_a_change_applies_its_effects_and_leaves_nothing_pending(store: Store) -> None:
    task = await store.tasks.create(new_task())
    assert await lengths(store) == (1, 1, 1)  # planning job, created event, board entry
    await move_to(store, task.task_id, TaskStatus.PENDING_APPROVAL)
    jobs, outbox, board = await lengths(store)
    await store.tasks.advance(task.task_id, Action.APPROVE, enqueue=Phase.EXECUTE)
    assert await lengths(store) == (jobs + 1, outbox + 1, board + 1)
    [(_, last)] = await redis(store).xrevrange(store.keys.outbox(), count=1)
    assert (last["event"], last["previous"]) == ("approved", "pending_approval")
    assert await redis(store).llen(store.keys.effects(task.task_id)) == 0
    assert await redis(store).zcard(store.keys.unsettled()) == 0
    approved = await store.tasks.list(status=TaskStatus.APPROVED, limit=10)
    assert [t.task_id for t in approved] == [task.task_id]
    assert await store.tasks.list(status=TaskStatus.PENDING_APPROVAL, limit=10) == []
    with pytest.raises(ConflictError):  # a refused change records nothing, leaves nothing
        await store.tasks.advance(task.task_id, Action.APPROVE, enqueue=Phase.EXECUTE)
    assert await redis(store).zcard(store.keys.unsettled()) == 0


async def test_the_sweep_applies_what_a_dead_process_left_exactly_once(store: Store) -> None:
    task = await store.tasks.create(new_task())
    await move_to(store, task.task_id, TaskStatus.PENDING_APPROVAL)
    before = await lengths(store)
    await record_only(store, task.task_id, Phase.EXECUTE)
    # The status changed with its effects recorded, but nothing reached the other keys yet.
    assert (await store.tasks.get(task.task_id)).status is TaskStatus.APPROVED
    assert await lengths(store) == before
    pending = await redis(store).lrange(store.keys.effects(task.task_id), 0, -1)
    assert len(pending) == 4  # outbox event, index move, board entry, execute job
    # A young change is some live process's to finish: the sweep leaves it alone.
    await store.tasks.settle_stale(older_than_s=30)
    assert await lengths(store) == before
    assert await store.tasks.settle_stale(older_than_s=0) == 1
    assert await lengths(store) == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert await redis(store).zcard(store.keys.unsettled()) == 0
    # Applying the same effects again (the dead process's twin waking up) adds nothing.
    await asyncio.gather(*(store.tasks.effects.settle(task.task_id, pending) for _ in range(3)))
    assert await lengths(store) == (before[0] + 1, before[1] + 1, before[2] + 1)


async def test_concurrent_settles_apply_each_effect_once(store: Store) -> None:
    task = await store.tasks.create(new_task())
    await move_to(store, task.task_id, TaskStatus.PENDING_APPROVAL)
    before = await lengths(store)
    await record_only(store, task.task_id, Phase.EXECUTE)
    pending = await redis(store).lrange(store.keys.effects(task.task_id), 0, -1)
    await asyncio.gather(*(store.tasks.effects.settle(task.task_id, pending) for _ in range(5)))
    assert await lengths(store) == (before[0] + 1, before[1] + 1, before[2] + 1)


async def draft_only(store: Store, ref: str, *, claim: bool) -> str:
    """An intake that wrote its draft (and maybe claimed its ref), then died before the seal."""
    k, tasks = store.keys, store.tasks
    now = utc_iso()
    task = Task(
        task_id=new_task_id(),
        status=TaskStatus.QUEUED,
        created_at=now,
        updated_at=now,
        **new_task().model_dump(),
    )
    tid, ref_key = task.task_id, k.ref("sentry", ref)
    await tasks.effects.begin(tid)
    flat = [part for pair in task.to_hash().items() for part in pair]
    record = json.dumps({"status": "queued", "at": now})
    await tasks._draft(
        keys=[k.task(tid), k.history(tid)], args=[60000, record, json.dumps([ref_key]), *flat]
    )
    if claim:
        assert await tasks._mark(keys=[ref_key], args=["", tid, 60000]) == 1
    return tid


async def test_a_dead_intakes_draft_is_sealed_when_its_marks_point_at_it(store: Store) -> None:
    tid = await draft_only(store, "ISSUE-2", claim=True)
    # Marked but unsealed: a racing delivery sees the incident taken (the task exists) ...
    assert (await store.tasks.get(tid)).status is TaskStatus.QUEUED
    assert await lengths(store) == (0, 0, 0)
    # ... and the sweep finishes the creation: job, event, indexes.
    await store.tasks.settle_stale(older_than_s=0)
    assert await lengths(store) == (1, 1, 1)
    assert [t.task_id for t in await store.tasks.list(status=None, limit=10)] == [tid]
    assert await redis(store).hget(store.keys.task(tid), "intake") is None


async def test_a_dead_intakes_draft_is_discarded_when_its_marks_do_not(store: Store) -> None:
    winner = await store.tasks.create_marked(new_task(), Marks("sentry", None, "ISSUE-9"))
    tid = await draft_only(store, "ISSUE-9", claim=False)
    await store.tasks.settle_stale(older_than_s=0)
    assert winner is not None and await redis(store).exists(store.keys.task(tid)) == 0
    assert await redis(store).get(store.keys.ref("sentry", "ISSUE-9")) == winner.task_id
    assert (await lengths(store))[0] == 1  # the winner's job only


async def test_racing_deliveries_for_one_incident_create_one_task(store: Store) -> None:
    marks = [Marks("sentry", f"d-{i}", "ISSUE-7") for i in range(8)]
    results = await asyncio.gather(*(store.tasks.create_marked(new_task(), m) for m in marks))
    made = [t for t in results if t is not None]
    assert len(made) == 1
    assert await redis(store).get(store.keys.ref("sentry", "ISSUE-7")) == made[0].task_id
    assert [t.task_id for t in await store.tasks.list(status=None, limit=50)] == [made[0].task_id]
    assert (await lengths(store))[0] == 1  # one planning job
    # The losers' drafts are gone; their delivery marks point at nothing (stale, replaced).
    assert await redis(store).zcard(store.keys.unsettled()) == 0


async def test_one_change_ending_never_drops_anothers_entry(store: Store) -> None:
    """A change that ends after another entered the task leaves the task unsettled.

    Even in one millisecond (or with clocks that disagree): the other change's effects may
    still be unapplied, and the unsettled set is the only way the sweep finds them.
    """
    task = await store.tasks.create(new_task())
    effects = store.tasks.effects
    first = await effects.begin(task.task_id)
    second = await effects.begin(task.task_id)
    assert first != second
    await effects.end(task.task_id, first)
    assert await redis(store).zscore(store.keys.unsettled(), task.task_id) == second
    await effects.end(task.task_id, second)
    assert await redis(store).zscore(store.keys.unsettled(), task.task_id) is None


async def test_an_effect_that_fails_stays_pending_and_is_applied_later(store: Store) -> None:
    """The effects are dropped from the list only once all applied (a pipeline runs on)."""
    task = await store.tasks.create(new_task())
    await move_to(store, task.task_id, TaskStatus.PENDING_APPROVAL)
    before = await lengths(store)
    await record_only(store, task.task_id, Phase.EXECUTE)
    key = store.keys.effects(task.task_id)
    pending = await redis(store).lrange(key, 0, -1)
    outbox = store.keys.outbox()
    await redis(store).delete(outbox)
    await redis(store).set(outbox, "not a stream")  # its effect's XADD fails: WRONGTYPE
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await store.tasks.effects.settle(task.task_id, pending)
    assert await redis(store).lrange(key, 0, -1) == pending  # nothing forgotten
    await redis(store).delete(outbox)
    await store.tasks.effects.settle(task.task_id)
    assert await lengths(store) == (before[0] + 1, 1, before[2] + 1)  # each applied once
    assert await redis(store).llen(key) == 0


async def test_a_batch_keeps_order_and_reports_errors_in_place(store: Store) -> None:
    key, other = f"{store.keys.outbox()}:list", f"{store.keys.events()}:text"
    await redis(store).set(other, "x")
    first: list[list[Command]] = [[("RPUSH", key, "a"), ("RPUSH", key, "b")], [("INCR", other)]]
    replies = await batch(redis(store), first, [[("LLEN", key)]], raise_on_error=False)
    assert replies[:2] == [1, 2] and replies[3] == 2
    assert isinstance(replies[2], ResponseError)
    with pytest.raises(ResponseError, match="not an integer"):
        await batch(redis(store), [[("INCR", other)], [("RPUSH", key, "c")]])
    assert await redis(store).lrange(key, 0, -1) == ["a", "b", "c"]  # the rest ran all the same


async def test_one_server_settles_an_intake_and_a_change_in_few_round_trips(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One write per round trip: a pipeline sends its commands in one."""
    if is_cluster(redis(store)):
        pytest.skip("a cluster runs the groups side by side instead")
    await redis(store).ping()  # connected (the handshake is not the store's)
    sent: list[int] = []
    send = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(1)
        await send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    task = await store.tasks.create_marked(new_task(), Marks("sentry", "d-1", "ISSUE-1"))
    assert task is not None
    # begin+draft, the two marks, the seal, the stream effects and index moves, then the
    # effects dropped with the task leaving the unsettled set
    assert len(sent) == 5
    sent.clear()
    await store.tasks.advance(task.task_id, Action.CANCEL)
    assert len(sent) == 3  # begin+script, the effects, dropping them with the end


async def test_the_sweep_sees_an_entry_made_in_the_same_millisecond(store: Store) -> None:
    """``older_than_s=0`` means everything entered so far, the current millisecond too.

    An entry's score is its millisecond plus a fraction; a bound of "now" in whole
    milliseconds missed every entry of the current one (a flaky sweep test found it).
    """
    for n in range(200):
        tid = f"task-1-{n:04x}"
        await store.tasks.effects.begin(tid)
        assert tid in [t for t, _ in await store.tasks.effects.unsettled(0, 1000)], n


async def test_changes_begun_in_one_millisecond_never_share_a_score(store: Store) -> None:
    """A double near 1.8e12 ms holds ~4,000 fractions a millisecond: draws could collide."""
    effects = store.tasks.effects
    scores = [effects.begin_command("task-x")[0] for _ in range(3_000)]
    assert len(set(scores)) == len(scores)
    # Each inside the millisecond it was drawn in: the sweep's bound is the next one.
    assert all(score - int(score) < 1 for score in scores)
