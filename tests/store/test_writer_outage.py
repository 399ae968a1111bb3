"""The log writer when Redis stops answering: nothing lost, nothing stored twice, no stall."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hookagent.models import LogStream, NewTask
from hookagent.settings import Settings
from hookagent.store import Store, StoreUnavailable, connect
from hookagent.store.logs import Columns
from hookagent.store.spill import SUFFIX, SpillFile
from hookagent.store.writer import LogWriter, recover_spills
from tests.netfault import Relay, relay

# Short, so a frozen relay fails a write quickly; a real deployment keeps 5 s.
TIMEOUT_S = 0.5


@pytest.fixture
async def cut(redis_url: str) -> AsyncIterator[Relay]:
    """A relay to the test Redis that the test can freeze."""
    async with relay(redis_url) as r:
        yield r


@pytest.fixture
async def far(cut: Relay, settings: Settings) -> AsyncIterator[Store]:
    """Stores whose client goes through ``cut``."""
    client = connect(cut.url(), socket_timeout=TIMEOUT_S)
    yield Store.build(client, settings)
    await client.aclose()


async def new_task(store: Store) -> str:
    new = NewTask(source="jira", repository="acme/x", title="t", prompt="p")
    return (await store.tasks.create(new)).task_id


def writer(store: Store, task_id: str, **kw: object) -> LogWriter:
    return LogWriter(
        store.logs,
        task_id,
        token="",
        attempt=1,
        batch_lines=10,
        flush_ms=5,
        line_max=100,
        raw_max=0,
        **kw,  # type: ignore[arg-type]
    )


async def messages(store: Store, task_id: str) -> list[str]:
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return [e.message for e in entries]


async def test_a_failed_append_keeps_its_batch(far: Store, store: Store, cut: Relay) -> None:
    tid = await new_task(store)
    log_writer = writer(far, tid)
    for i in range(25):
        log_writer.add(LogStream.STDOUT, f"n{i}")
    cut.freeze()
    with pytest.raises(StoreUnavailable):
        await log_writer.flush()
    cut.thaw()
    await log_writer.flush()
    assert await messages(store, tid) == [f"[stdout] n{i}" for i in range(25)]


async def test_a_batch_whose_reply_was_lost_is_stored_once(
    far: Store, store: Store, cut: Relay
) -> None:
    tid = await new_task(store)
    log_writer = writer(far, tid)
    log_writer.add(LogStream.STDOUT, "n0")
    await log_writer.flush()  # the connection is up and the script loaded
    for i in range(1, 5):
        log_writer.add(LogStream.STDOUT, f"n{i}")
    cut.swallow_replies()  # the append lands; its reply never comes
    with pytest.raises(StoreUnavailable):
        await log_writer.flush()
    assert await messages(store, tid) == [f"[stdout] n{i}" for i in range(5)]
    cut.thaw()
    log_writer.add(LogStream.STDOUT, "n5")
    await log_writer.flush()  # the same batch again, then the next
    assert await messages(store, tid) == [f"[stdout] n{i}" for i in range(6)]


async def test_an_outage_holds_lines_on_disk_and_writes_them_in_order(
    far: Store, store: Store, cut: Relay, tmp_path: Path
) -> None:
    tid = await new_task(store)
    spill = tmp_path / "spill"
    async with writer(far, tid, hold_lines=30, spill_dir=spill) as log_writer:
        log_writer.add(LogStream.STDOUT, "before")
        await log_writer.drain()
        cut.freeze()
        sent = 0
        # The producer never waits on the frozen Redis: 600 lines go in at once.
        async with asyncio.timeout(TIMEOUT_S * 8):
            while not log_writer.away or sent < 600:
                log_writer.add_lines(LogStream.STDOUT, [f"n{sent + i}" for i in range(20)])
                sent += 20
                await log_writer.wait_room()
                await asyncio.sleep(0.01)  # an agent printing, paced
        assert len(list(spill.glob(f"*{SUFFIX}"))) == 1
        assert log_writer.held >= sent - 30 - 20
        cut.thaw()
    assert await messages(store, tid) == ["[stdout] before"] + [
        f"[stdout] n{i}" for i in range(sent)
    ]
    assert not list(spill.glob(f"*{SUFFIX}")), "the spill file is gone once written"


async def test_a_dead_workers_spill_file_is_stored_by_the_next_one(
    store: Store, tmp_path: Path
) -> None:
    tid = await new_task(store)
    spill = tmp_path / "spill"
    # What a worker killed mid-outage leaves: its file, lock released, 3 of 5 lines stored.
    left = SpillFile.create(spill, task_id=tid, attempt=2)
    left.write(Columns.of([("t", "stdout", f"[stdout] n{i}", "", "") for i in range(5)]))
    left.read(3)
    left.commit(3)
    left.close()
    live = SpillFile.create(spill, task_id=tid, attempt=3)  # a running writer's: not touched
    live.write(Columns.of([("t", "stdout", "[stdout] live", "", "")]))

    assert await recover_spills(store.logs, spill) == 2
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    recovered = [e for e in entries if e.attempt == 2]
    assert [e.message for e in recovered][1:] == ["[stdout] n3", "[stdout] n4"]
    assert "2 lines of attempt 2" in recovered[0].message
    assert [p.name for p in spill.iterdir()] == [live.path.name]
    assert await recover_spills(store.logs, spill) == 0, "once only"
    live.remove()
