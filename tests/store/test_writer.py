"""The log writer's batching: the flusher writes what is due, not a trail of tiny appends."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from hookagent.models import LogStream, NewTask
from hookagent.store import Store
from hookagent.store.writer import LogWriter


async def new_writer(store: Store, *, batch_lines: int) -> LogWriter:
    new = NewTask(source="jira", repository="acme/x", title="t", prompt="p")
    task_id = (await store.tasks.create(new)).task_id
    # Not entered: no flusher runs, the test calls flush() itself.
    return LogWriter(
        store.logs,
        task_id,
        token="",
        attempt=1,
        batch_lines=batch_lines,
        flush_ms=50,
        line_max=100,
        raw_max=0,
    )


async def appends(redis: Redis, store: Store, task_id: str) -> int:
    """Stream entries of the task's log: one per append of up to a chunk of lines."""
    return int(await redis.xlen(store.keys.logs(task_id)))


async def messages(store: Store, task_id: str) -> list[str]:
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return [e.message for e in entries]


async def test_lines_arriving_during_a_due_flush_wait_for_their_own_interval(
    redis: Redis, store: Store
) -> None:
    writer = await new_writer(store, batch_lines=1000)
    tid = writer.task_id
    before = await appends(redis, store, tid)
    for i in range(5):
        writer.add(LogStream.STDOUT, f"due {i}")
    flushing = asyncio.create_task(writer.flush(due_only=True))
    await asyncio.sleep(0)  # the flush took the five lines and waits on Redis
    for i in range(3):
        writer.add(LogStream.STDOUT, f"late {i}")
    await flushing
    # One append: the late lines did not go out as a second, smaller one right behind it.
    assert await appends(redis, store, tid) == before + 1
    assert writer.held == 3
    assert [m.removeprefix("[stdout] ") for m in await messages(store, tid)] == [
        f"due {i}" for i in range(5)
    ]
    # A plain flush (a drain, the end of the attempt) writes everything, in order.
    await writer.flush()
    assert writer.held == 0
    assert [m.removeprefix("[stdout] ") for m in await messages(store, tid)] == [
        *(f"due {i}" for i in range(5)),
        *(f"late {i}" for i in range(3)),
    ]


async def test_a_due_flush_writes_on_while_a_full_batch_waits(redis: Redis, store: Store) -> None:
    writer = await new_writer(store, batch_lines=4)
    tid = writer.task_id
    before = await appends(redis, store, tid)
    for i in range(3):
        writer.add(LogStream.STDOUT, f"due {i}")
    flushing = asyncio.create_task(writer.flush(due_only=True))
    await asyncio.sleep(0)  # three lines in flight
    for i in range(9):
        writer.add(LogStream.STDOUT, f"late {i}")
    await flushing
    # Two full batches behind the due one went out at once; the one line left waits.
    assert await appends(redis, store, tid) == before + 3
    assert writer.held == 1
