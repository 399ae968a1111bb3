"""Delivery guarantees: the outbox step, retries, giving up, a notifier killed mid-delivery."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from typing import cast

import pytest
from pydantic import SecretStr

from hookagent.models import Action, NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import REPO, move_to, wait_for_line
from tests.notify.conftest import RunningNotifier, StartNotifier
from tests.notify_stubs import RecordingStub, SlackStub


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


@pytest.fixture
def receiver() -> Iterator[RecordingStub]:
    with RecordingStub() as stub:
        yield stub


def new_task() -> NewTask:
    return NewTask(source="sentry", repository=REPO, title="KeyError in export", prompt="fix")


async def outbox_events(store: Store) -> list[dict[str, str]]:
    rows = cast("list[tuple[str, dict[str, str]]]", await store.redis.xrange(store.keys.outbox()))
    return [fields for _, fields in rows]


async def test_creation_and_every_change_append_an_event_in_the_same_step(store: Store) -> None:
    task = await store.tasks.create(new_task())
    await store.tasks.claim(task.task_id, token="t1", phase=task.phase)
    await store.tasks.claim(task.task_id, token="t2", phase=task.phase)  # a reclaimed job
    await store.tasks.advance(task.task_id, Action.PLAN_READY, token="t2", fields={"plan": "p"})
    await store.tasks.advance(task.task_id, Action.REJECT, reason="rejected by dana")
    events = await outbox_events(store)
    assert [(e["event"], e["previous"]) for e in events] == [
        ("created", ""),
        ("discovering", "queued"),  # the restart of the same phase adds nothing
        ("pending_approval", "discovering"),
        ("rejected", "pending_approval"),
    ]
    assert {e["task_id"] for e in events} == {task.task_id}
    assert events[-1]["reason"] == "rejected by dana"


async def test_429_with_retry_after_then_200_delivers_exactly_once(
    settings: Settings, store: Store, start_notifier: StartNotifier, slack: SlackStub
) -> None:
    hook = slack.hook_url.removeprefix(slack.url)
    slack.script[hook].append((429, {"Retry-After": "1"}))
    own = settings.model_copy(update={"slack_webhook_url": SecretStr(slack.hook_url)})
    notifier = start_notifier(own)
    task = await store.tasks.create(new_task())
    await drained(store, notifier, 1)
    first, second = slack.requests
    assert (first["status"], second["status"]) == (429, 200)
    assert second["at"] - first["at"] >= 0.9  # Retry-After: 1 was honoured
    assert len(slack.accepted(hook)) == 1
    assert task.title in second["body"]["text"]
    assert "blocks" in second["body"] and "actions" not in str(second["body"]["blocks"])


async def test_a_channel_that_keeps_failing_is_given_up_with_a_log_line(
    settings: Settings, store: Store, start_notifier: StartNotifier, slack: SlackStub
) -> None:
    hook = slack.hook_url.removeprefix(slack.url)
    slack.script[hook] += [(503, {}), (503, {})]
    own = settings.model_copy(
        update={"slack_webhook_url": SecretStr(slack.hook_url), "notify_max_attempts": 2}
    )
    notifier = start_notifier(own)
    task = await store.tasks.create(new_task())
    await drained(store, notifier, 1)
    await wait_for_line(store, task.task_id, "notification of task.created failed after 2")
    assert [r["status"] for r in slack.requests] == [503, 503]
    assert (await store.tasks.get(task.task_id)).status is TaskStatus.QUEUED  # task untouched


async def test_a_notifier_killed_mid_delivery_is_taken_over_without_losing_events(
    settings: Settings, store: Store, start_notifier: StartNotifier, receiver: RecordingStub
) -> None:
    """At least once: the event in flight when the notifier died may arrive twice (same
    delivery id); every other event arrives exactly once, none is lost."""
    own = settings.model_copy(update={"notify_urls": f"{receiver.url}/in", "notify_lease": 1.0})
    release = threading.Event()
    receiver.hold = release
    first = start_notifier(own)
    task = await store.tasks.create(new_task())
    assert await asyncio.to_thread(receiver.held.wait, 10)
    await first.kill()  # like SIGKILL mid-request: no ack, no "sent" mark
    await move_to(store, task.task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "p"})
    await move_to(store, task.task_id, TaskStatus.CANCELLED, reason="cancelled by dana")
    release.set()

    second = start_notifier(own)  # takes the dead one's event over once its lease (1 s) lapsed
    # created, pending_approval (straight from queued), cancelled: all acked by the second.
    await drained(store, second, 3)
    names = [r["headers"]["x-hookagent-event"] for r in receiver.accepted()]
    counts = Counter(names)
    assert counts["task.created"] in (1, 2)  # the one in flight: at least once
    assert counts["task.plan_ready"] == counts["task.cancelled"] == 1
    ids = {r["headers"]["x-hookagent-delivery"] for r in receiver.accepted()
           if r["headers"]["x-hookagent-event"] == "task.created"}  # fmt: skip
    assert len(ids) == 1  # a redelivery carries the same delivery id


async def drained(store: Store, notifier: RunningNotifier, events: int) -> None:
    """Wait until ``notifier`` acked ``events`` events; then nothing is left in the outbox."""
    await asyncio.wait_for(notifier.notifier.wait_acked(events), 15)
    assert await store.redis.xlen(store.keys.outbox()) == 0
    assert await store.outbox.pending() == 0
